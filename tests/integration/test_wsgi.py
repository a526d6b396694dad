"""WSGI over geworker: a real Flask app under ``gunicorn -k geworker.Worker -w 2``.

Two ways: a plain WSGI app given to gunicorn (``app:wsgi_app``, a drop-in for
gunicorn's gevent worker), and a geworker Server mounting the Flask app on
its http:// listener next to a text:// listener of the same server.
"""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from conftest import LineClient, free_port

FLASK_APP = """
import os
import time

import gevent
from flask import Flask, Response, jsonify, request, stream_with_context

wsgi_app = Flask(__name__)


@wsgi_app.get("/")
def index():
    return "hello from flask"


@wsgi_app.route("/echo", methods=["POST"])
def echo():
    return jsonify(
        json=request.get_json(silent=True), form=request.form.to_dict(flat=False),
        args=request.args.to_dict(flat=False), cookies=request.cookies,
        files={k: [f.filename, len(f.read())] for k, f in request.files.items()},
        length=request.content_length, path=request.path, script=request.script_root,
        remote=request.remote_addr, scheme=request.scheme, host=request.host,
    )


@wsgi_app.get("/path/<name>")
def path(name):
    return jsonify(name=name, full=request.full_path)


@wsgi_app.get("/cookie")
def cookie():
    resp = Response("set")
    resp.set_cookie("flask_sid", "v1", httponly=True, samesite="Lax")
    return resp


@wsgi_app.get("/stream")
def stream():
    def gen():
        for i in range(3):
            yield f"line {i}\\n"
    return Response(stream_with_context(gen()), mimetype="text/plain")


INFLIGHT = [0, 0]  # now, most seen


@wsgi_app.get("/sleep")
def sleep():
    INFLIGHT[0] += 1
    INFLIGHT[1] = max(INFLIGHT)
    time.sleep(0.5)  # patched by the worker: other requests of this worker run meanwhile
    INFLIGHT[0] -= 1
    return str(INFLIGHT[1])


@wsgi_app.get("/boom")
def boom():
    raise RuntimeError("flask boom")


@wsgi_app.get("/pid")
def pid():
    return str(os.getpid())
"""

MOUNTED_APP = FLASK_APP + """

import pytest

from geworker import Server

server = Server("http://127.0.0.1:{http_port}", "text://127.0.0.1:{text_port}")
server.mount_wsgi(wsgi_app)


@server.on_message
def on_text(conn, message):
    conn.send("text:" + message)
"""


def request(port: int, method: str, path: str, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r, r.read()
    finally:
        c.close()


def check_flask(port: int) -> None:
    status, r, body = request(port, "GET", "/")
    assert (status, body) == (200, b"hello from flask")
    assert r.getheader("Content-Type") == "text/html; charset=utf-8"
    status, _, body = request(port, "POST", "/echo?a=1&a=2", json.dumps({"k": [1]}).encode(),
                              {"Content-Type": "application/json", "Cookie": "c1=x; c2=y"})
    info = json.loads(body)
    assert info["json"] == {"k": [1]} and info["args"] == {"a": ["1", "2"]}
    assert info["cookies"] == {"c1": "x", "c2": "y"} and info["path"] == "/echo"
    assert info["remote"] == "127.0.0.1" and info["scheme"] == "http"
    assert info["host"] == f"127.0.0.1:{port}"
    boundary = "xyzzy"
    upload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n"
              f"--{boundary}\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.bin\""
              f"\r\n\r\n").encode() + b"\x00" * 300_000 + f"\r\n--{boundary}--\r\n".encode()
    status, _, body = request(port, "POST", "/echo", upload,
                              {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    info = json.loads(body)
    assert info["form"] == {"f": ["v"]} and info["files"] == {"up": ["a.bin", 300_000]}
    status, _, body = request(port, "GET", "/path/%C3%A9t%C3%A9?q=%20")
    assert json.loads(body) == {"name": "été", "full": "/path/été?q=%20"}
    status, r, _ = request(port, "GET", "/cookie")
    assert r.getheader("Set-Cookie") == "flask_sid=v1; HttpOnly; Path=/; SameSite=Lax"
    status, r, body = request(port, "GET", "/stream")
    assert body == b"line 0\nline 1\nline 2\n"
    assert request(port, "GET", "/boom")[0] == 500
    assert request(port, "GET", "/missing")[0] == 404
    status, r, body = request(port, "HEAD", "/")
    assert status == 200 and body == b"" and r.getheader("Content-Length") == "16"


# Flask logs the /boom error with its traceback
@pytest.mark.allow_traceback('RuntimeError: flask boom')
def test_plain_wsgi_app_as_gunicorn_app(gunicorn):
    port = free_port()
    g = gunicorn(FLASK_APP, target="app:wsgi_app",
                 args=["--bind", f"127.0.0.1:{port}", "--access-logfile", "-",
                       "--access-logformat", 'ACCESS "%(r)s" %(s)s %(b)s %({x-test}i)s'])
    pids = sorted(g.worker_pids())
    assert len(pids) == 2
    check_flask(port)
    # Keep-alive with pipelining through Flask.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /pid HTTP/1.1\r\nHost: h\r\n\r\n" * 3)
        data = b""
        while data.count(b"HTTP/1.1 200") < 3:
            chunk = s.recv(65536)
            assert chunk
            data += chunk
    # Blocking calls are patched: slow requests overlap inside a worker.
    import threading

    results: list[tuple[int, bytes]] = []
    threads = [threading.Thread(target=lambda: results.append(request(port, "GET", "/sleep")[::2]))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert [status for status, _ in results] == [200] * 8
    assert max(int(body) for _, body in results) >= 2
    assert sorted(g.worker_pids()) == pids
    assert "flask boom" in g.log()
    request(port, "GET", "/path/x?y=1", headers={"X-Test": "tagged"})
    from conftest import wait_until

    wait_until(lambda: 'ACCESS "GET /path/x?y=1 HTTP/1.1" 200 34 tagged' in g.log(),
               what="the access log line")
    assert 'ACCESS "GET /boom HTTP/1.1" 500' in g.log()


# Flask logs the /boom error with its traceback
@pytest.mark.allow_traceback('RuntimeError: flask boom')
def test_flask_mounted_on_a_geworker_server(gunicorn):
    http_port, text_port = free_port(), free_port()
    g = gunicorn(MOUNTED_APP.replace("{http_port}", str(http_port))
                 .replace("{text_port}", str(text_port)))
    assert len(g.worker_pids()) == 2
    check_flask(http_port)
    c = LineClient(text_port)
    assert c.request("hi") == "text:hi"
    c.close()


def test_plain_wsgi_app_over_tls_with_gunicorn_certfile(gunicorn, tmp_path):
    import ssl

    import pytest

    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    cert.private_key_pem.write_to_path(key_path)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    port = free_port()
    gunicorn(FLASK_APP, target="app:wsgi_app",
             args=["--bind", f"127.0.0.1:{port}", "--certfile", str(cert_path),
                   "--keyfile", str(key_path)])
    c = http.client.HTTPSConnection("127.0.0.1", port, context=client, timeout=5)
    c.request("POST", "/echo", body=b"{}", headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["scheme"] == "https"
    c.close()


def test_plain_wsgi_app_takes_gunicorns_request_limits(gunicorn):
    port = free_port()
    gunicorn("def app(environ, start_response):\n"
             "    start_response('200 OK', [('Content-Type', 'text/plain')])\n"
             "    return [b'ok']\n", target="app:app",
             workers=1, args=["--bind", f"127.0.0.1:{port}", "--limit-request-line", "100",
                   "--limit-request-fields", "4", "--limit-request-field_size", "50"])

    def status(path: str, headers: dict) -> int:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", path, headers=headers)
        answer = c.getresponse().status
        c.close()
        return answer

    assert status("/" + "a" * 60, {}) == 200
    assert status("/" + "a" * 100, {}) == 414  # the default (4094) would take it
    assert status("/", {"X-1": "1", "X-2": "2"}) == 200  # with Host and Accept-Encoding
    assert status("/", {"X-1": "1", "X-2": "2", "X-3": "3"}) == 431
    assert status("/", {"X-1": "v" * 44}) == 431  # 3 + 2 + 44 + 2 > 50
    assert status("/", {"X-1": "v" * 43}) == 200
