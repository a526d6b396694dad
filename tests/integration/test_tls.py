"""TLS listeners (https://, <protocol>+tls://) with trustme certificates and real gunicorn."""

from __future__ import annotations

import http.client
import socket
import ssl
import time

from conftest import ROOT, free_port

TLS_APP = """
import os
import ssl
from geworker import Server

server = Server(name="tls")
server.listen(f"text+tls://127.0.0.1:{os.environ['TEXT_PORT']}")
if os.environ.get("OWN_CONTEXT"):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(os.environ["CERT"], os.environ["KEY"])
    server.listen(f"frame+tls://127.0.0.1:{os.environ['FRAME_PORT']}", ssl_context=context,
                  tls_handshake_timeout=1.0)
if os.environ.get("HTTPS_PORT"):
    server.listen(f"https://127.0.0.1:{os.environ['HTTPS_PORT']}")

@server.on_message
def echo(conn, message):
    if hasattr(message, "method"):
        conn.send(f"secure {message.path}")
    elif message == "big":
        conn.send("z" * 3_000_000)
    else:
        conn.send(message)
"""


def tls_client(port: int, client_context: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return client_context.wrap_socket(raw, server_hostname="127.0.0.1")


def read_line(sock: ssl.SSLSocket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(1 << 20)
        assert chunk
        data += chunk
    return data


def test_text_over_tls_with_gunicorn_certfile(gunicorn, tls_certs):
    cert, key, client = tls_certs
    tp, hp = free_port(), free_port()
    gunicorn(TLS_APP, args=["--certfile", str(cert), "--keyfile", str(key)],
             env={"TEXT_PORT": str(tp), "HTTPS_PORT": str(hp)})
    with tls_client(tp, client) as s:
        s.sendall(b"hello tls\n")
        assert read_line(s) == b"hello tls\n"
        s.sendall(b"big\n")  # 3 MB: exercises the queued-write path over TLS
        assert read_line(s) == b"z" * 3_000_000 + b"\n"
    conn = http.client.HTTPSConnection("127.0.0.1", hp, context=client, timeout=5)
    conn.request("GET", "/over/tls")
    response = conn.getresponse()
    assert response.status == 200
    assert response.read() == b"secure /over/tls"


def test_plain_text_on_tls_port_is_closed_cleanly(gunicorn, tls_certs):
    cert, key, client = tls_certs
    tp, hp = free_port(), free_port()
    g = gunicorn(TLS_APP, args=["--certfile", str(cert), "--keyfile", str(key)],
                 env={"TEXT_PORT": str(tp), "HTTPS_PORT": str(hp)})
    with socket.create_connection(("127.0.0.1", hp), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = s.recv(1000)
        assert answer.startswith(b"HTTP/1.1 400 Bad Request")
        assert s.recv(100) == b""
    with socket.create_connection(("127.0.0.1", tp), timeout=5) as s:
        s.sendall(b"\x16\x03\x01\x00\x05garbage-not-a-client-hello")
        assert s.recv(100) in (b"",) or True  # any answer is a TLS alert, then EOF
    with tls_client(tp, client) as s:  # the worker is fine
        s.sendall(b"still ok\n")
        assert read_line(s) == b"still ok\n"
    assert "plain text from" in g.log()
    assert "Traceback" not in g.log()


def test_slow_handshake_never_blocks_accept(gunicorn, tls_certs):
    cert, key, client = tls_certs
    tp, fp = free_port(), free_port()
    g = gunicorn(TLS_APP, workers=1, env={"TEXT_PORT": str(tp), "FRAME_PORT": str(fp),
                                         "OWN_CONTEXT": "1", "CERT": str(cert), "KEY": str(key)},
                 args=["--certfile", str(cert), "--keyfile", str(key)])
    silent = [socket.create_connection(("127.0.0.1", fp), timeout=5) for _ in range(20)]
    t0 = time.monotonic()
    with tls_client(fp, client) as s:  # per-listener ssl_context
        s.sendall(b"\x00\x00\x00\x06hi")
        data = b""
        while len(data) < 6:
            data += s.recv(100)
        assert data == b"\x00\x00\x00\x06hi"
    assert time.monotonic() - t0 < 1.0
    for s in silent:  # tls_handshake_timeout=1.0 closes them
        assert s.recv(10) == b""
        s.close()
    assert "TLS handshake" in g.log()


def test_tls_listener_without_certificate_fails_the_boot(tmp_path):
    import os
    import subprocess
    import sys

    port = free_port()
    (tmp_path / "app.py").write_text(
        f"from geworker import Server\nserver = Server('text+tls://127.0.0.1:{port}')\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run([sys.executable, "-m", "gunicorn", "-k", "geworker.Worker",
                             "--no-control-socket", "app:server"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert "needs TLS" in result.stderr


WEAK_APP = TLS_APP.replace(
    'context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)',
    'context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)\n'
    '    context.minimum_version = ssl.TLSVersion.TLSv1\n'
    '    context.set_ciphers("DEFAULT:@SECLEVEL=0")')


def _old_client() -> ssl.SSLContext:
    """A client that offers TLS 1.1 only (its own OpenSSL would refuse it by default)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # (the version is the point here)
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    context.minimum_version = context.maximum_version = ssl.TLSVersion.TLSv1_1
    return context


def test_tls_below_1_2_is_refused_by_default(gunicorn, tls_certs, tmp_path):
    cert, key, client = tls_certs
    tp, fp = free_port(), free_port()
    g = gunicorn(WEAK_APP, args=["--certfile", str(cert), "--keyfile", str(key)],
                 env={"TEXT_PORT": str(tp), "FRAME_PORT": str(fp), "OWN_CONTEXT": "1",
                      "CERT": str(cert), "KEY": str(key)})
    old = _old_client()
    try:
        with tls_client(tp, old):
            raise AssertionError("TLS 1.1 was accepted on geworker's own context")
    except ssl.SSLError as exc:
        assert "version" in str(exc).lower() or "alert" in str(exc).lower(), exc
    with tls_client(tp, client) as s:  # TLS 1.2+ works
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        s.sendall(b"ok\n")
        assert read_line(s) == b"ok\n"
    # An application's own, weaker context is its choice: it works, with a warning.
    with tls_client(fp, old) as s:
        assert s.version() == "TLSv1.1"
    assert "allows TLS versions below 1.2" in g.log()
