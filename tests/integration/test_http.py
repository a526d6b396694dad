"""HTTP/1.1 against real gunicorn (-w 2) with http.client and raw sockets.

One server (tests/apps/http_app.py) is shared by the module; every test checks
what a real client sees. ``the_workers_survive`` runs after the bad cases:
same worker pids, still answering.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from conftest import Gunicorn, free_port

TESTS = Path(__file__).resolve().parent.parent
CORPUS = TESTS / "corpus" / "http"
APPS = TESTS / "apps"

APP = f"""
import sys
sys.path.insert(0, {str(APPS)!r})
from http_app import server
"""


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("http")
    root = tmp / "www"
    (root / "sub").mkdir(parents=True)
    (root / "index.html").write_text("<h1>index</h1>")
    (root / "hello.txt").write_text("hello static\n")
    (root / "sub" / "a b.txt").write_text("spaced")
    (root / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    secret = tmp / "secret.txt"
    secret.write_text("TOP SECRET")
    (root / "escape").symlink_to(secret)
    (root / "escape_dir").symlink_to(tmp)
    (root / "inside_link").symlink_to(root / "hello.txt")
    port = free_port()
    g = Gunicorn(tmp, APP, [], {"HTTP_URL": f"http://127.0.0.1:{port}",
                                "STATIC_ROOT": str(root)}, 2,
                 # the tests of callback errors provoke these, with their tracebacks
                 allow_traceback=["RuntimeError: boom",
                                  "geworker.errors.LocalProtocolError: response header"])
    try:
        g.wait_ready()
        g.port = port
        g.root = root
        g.initial_pids = sorted(g.worker_pids())
        assert len(g.initial_pids) == 2
        yield g
    finally:
        g.stop()
    g.check_log()


def client(srv, timeout: float = 5.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", srv.port, timeout=timeout)


def get(srv, path: str, headers: dict | None = None, method: str = "GET", body=None):
    c = client(srv)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read(), r
    finally:
        c.close()


def raw(srv, data: bytes, timeout: float = 5.0, chunk: int = 0, pause: float = 0.0) -> bytes:
    """Send raw bytes (optionally in tiny writes), read until the server closes."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            if chunk:
                for i in range(0, len(data), chunk):
                    s.sendall(data[i:i + chunk])
                    if pause:
                        time.sleep(pause)
            else:
                s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed early; read what it said
        out = b""
        while True:
            try:
                piece = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not piece:
                break
            out += piece
        return out


def statuses(data: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) [A-Z]", data)]


def assert_alive(srv) -> None:
    """The worker pids are the ones that started, and a normal request works."""
    status, _, body, _ = get(srv, "/pid")
    assert status == 200 and int(body) in srv.initial_pids
    assert sorted(srv.worker_pids()) == srv.initial_pids


# -- basics -------------------------------------------------------------------------


def test_hello_and_request_fields(srv):
    status, headers, body, _ = get(srv, "/")
    assert (status, body) == (200, b"hello")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Date" in headers
    status, _, body, _ = get(srv, "/info?a=1&b=x%20y&a=2",
                             {"X-Multi": "1", "Cookie": "k=v; s=\"q\""})
    info = json.loads(body)
    assert info["method"] == "GET" and info["path"] == "/info"
    assert info["query"] == [["a", "1"], ["b", "x y"], ["a", "2"]]
    assert ["x-multi", "1"] in info["headers"]
    assert info["cookies"] == {"k": "v", "s": "q"}
    assert info["version"] == "1.1" and info["remote"][0] == "127.0.0.1"


def test_repeated_headers_kept(srv):
    out = raw(srv, b"GET /info HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nX-A: 2\r\n"
                   b"Connection: close\r\n\r\n")
    body = json.loads(out.split(b"\r\n\r\n", 1)[1])
    assert [v for k, v in body["headers"] if k == "x-a"] == ["1", "2"]


def test_keep_alive_and_pipelining_in_order(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        wire = b"".join(b"GET /info?n=%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(10))
        s.sendall(wire + b"GET /pid HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert statuses(data) == [200] * 11
    order = [int(m) for m in re.findall(rb'"query":\[\["n","(\d+)"\]\]', data)]
    assert order == list(range(10))
    assert data.count(b"Connection: close") == 1


def test_http_client_reuses_connection(srv):
    c = client(srv)
    ports = set()
    for i in range(5):
        c.request("POST", "/echo", body=f"body {i}".encode())
        r = c.getresponse()
        assert r.read() == f"body {i}".encode() and r.getheader("X-Method") == "POST"
        ports.add(c.sock.getsockname()[1])
    assert len(ports) == 1
    c.close()


def test_http10(srv):
    out = raw(srv, b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in out
    assert out.endswith(b"hello")
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        first = s.recv(65536)
        assert b"Connection: keep-alive" in first and first.endswith(b"hello")
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert s.recv(65536).endswith(b"hello")


def test_head(srv):
    status, headers, body, _ = get(srv, "/", method="HEAD")
    assert status == 200 and body == b"" and headers["Content-Length"] == "5"
    out = raw(srv, b"HEAD /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, rest = out.partition(b"\r\n\r\n")
    assert b"Content-Length: 3145745" in head and rest == b""


def test_expect_100_continue(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n")
        assert s.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        s.sendall(b"12345")
        out = s.recv(65536)
        assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"12345")
    # Too large: the final answer comes at once, no 100.
    out = raw(srv, b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n"
                   b"Expect: 100-continue\r\n\r\n")
    assert statuses(out) == [413]


def test_chunked_request_body(srv):
    out = raw(srv, b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                   b"Connection: close\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nX-T: 1\r\n\r\n")
    assert statuses(out) == [200] and out.endswith(b"abcdefg")


def test_json_body(srv):
    status, _, body, _ = get(srv, "/json", {"Content-Type": "application/json"},
                             "POST", json.dumps({"a": [1, "é"]}).encode())
    assert status == 200 and json.loads(body) == {"got": {"a": [1, "é"]}}
    status, _, body, _ = get(srv, "/json", {"Content-Type": "application/json"}, "POST", b"{no")
    assert status == 400 and b"invalid JSON" in body


def test_urlencoded_form(srv):
    _status, _, body, _ = get(srv, "/form", {"Content-Type": "application/x-www-form-urlencoded"},
                             "POST", b"a=1&b=h%C3%A9&a=2&empty=")
    assert json.loads(body)["form"] == [["a", "1"], ["b", "hé"], ["a", "2"], ["empty", ""]]


def test_multipart_upload_to_temp_files(srv):
    boundary = uuid.uuid4().hex
    big = os.urandom(1536 * 1024)
    small = b"tiny file"
    body = b"".join([
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nMy upload\r\n"
        .encode(),
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"big.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n".encode(), big, b"\r\n",
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"; filename=\"n.txt\"\r\n"
        "Content-Type: text/plain\r\n\r\n".encode(), small, b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ])
    status, _, out, _ = get(srv, "/form",
                            {"Content-Type": f"multipart/form-data; boundary={boundary}"},
                            "POST", body)
    assert status == 200
    result = json.loads(out)
    assert result["form"] == [["title", "My upload"]]
    doc, note = result["files"]
    assert doc == {"name": "doc", "filename": "big.bin", "size": len(big), "on_disk": True,
                   "type": "application/octet-stream",
                   "sha256": hashlib.sha256(big).hexdigest()}
    assert note["size"] == len(small) and not note["on_disk"]
    assert note["sha256"] == hashlib.sha256(small).hexdigest()


def test_malformed_multipart_is_400(srv):
    status, _, _, _ = get(srv, "/form", {"Content-Type": "multipart/form-data; boundary=zz"},
                          "POST", b"--zz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx")
    assert status == 400
    assert_alive(srv)


def test_cookies_with_attributes(srv):
    _, _, _, r = get(srv, "/cookie")
    cookies = r.headers.get_all("Set-Cookie")
    assert cookies[0] == "sid=abc123; Max-Age=3600; Path=/; Secure; HttpOnly; SameSite=Strict"
    assert cookies[1].startswith("old=; Max-Age=0; Expires=Thu, 01 Jan 1970")


def test_streamed_bodies(srv):
    out = raw(srv, b"GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"".join(b"6\r\npart%d\n\r\n" % i for i in range(5)) + b"0\r\n\r\n"
    status, headers, body, _ = get(srv, "/stream")
    assert status == 200 and headers["Transfer-Encoding"] == "chunked"
    assert body == b"".join(b"part%d\n" % i for i in range(5))
    out = raw(srv, b"GET /stream HTTP/1.0\r\n\r\n")  # 1.0: no chunking, ends with the close
    assert b"Transfer-Encoding" not in out and out.endswith(b"part4\n")
    _status, headers, body, _ = get(srv, "/stream-length")
    assert headers["Content-Length"] == "5" and body == b"abcde"


def test_file_download_etag_304_and_range(srv):
    data = (srv.root / "big.bin").read_bytes()
    status, headers, body, _ = get(srv, "/big")
    assert status == 200 and body == data
    assert headers["Accept-Ranges"] == "bytes" and headers["Content-Type"]
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert get(srv, "/big", {"If-None-Match": etag})[0] == 304
    assert get(srv, "/big", {"If-Modified-Since": modified})[0] == 304
    status, headers, body, _ = get(srv, "/big", {"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200]
    assert headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    status, _, body, _ = get(srv, "/big", {"Range": "bytes=-10"})
    assert status == 206 and body == data[-10:]
    status, headers, _, _ = get(srv, "/big", {"Range": f"bytes={len(data)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"


def test_slow_reader_gets_the_whole_file(srv):
    data = (srv.root / "big.bin").read_bytes()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        s.sendall(b"GET /big HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        time.sleep(0.3)  # let the server fill the socket and wait for us
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    assert out.endswith(data)


def test_pipelined_large_answers_are_never_dropped(srv):
    # 8 x 2.5 MB answers exceed the kernel buffers and max_send_buffer_size (1 MiB)
    # while the client does not read.
    n = 2_500_000
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
        s.settimeout(10)
        s.connect(("127.0.0.1", srv.port))
        s.sendall(b"GET /blob?n=%d HTTP/1.1\r\nHost: h\r\n\r\n" % n * 7
                  + b"GET /blob?n=%d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % n)
        time.sleep(0.5)
        data = bytearray()
        while chunk := s.recv(1 << 20):
            data += chunk
    assert statuses(data) == [200] * 8
    assert data.count(b"b") >= 8 * n
    assert_alive(srv)


def test_static_files(srv):
    status, headers, body, _ = get(srv, "/static/hello.txt")
    assert (status, body) == (200, b"hello static\n")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert get(srv, "/static/")[2] == b"<h1>index</h1>"
    assert get(srv, "/static/sub/a%20b.txt")[2] == b"spaced"
    assert get(srv, "/static/inside_link")[2] == b"hello static\n"
    assert get(srv, "/static/hello.txt", method="POST")[0] == 405


@pytest.mark.parametrize("target", [
    "/static/../secret.txt", "/static/%2e%2e/secret.txt", "/static/%2E%2E%2Fsecret.txt",
    "/static/sub/../../secret.txt", "/static/..%2fsecret.txt", "/static/..%5csecret.txt",
    "/static/escape", "/static/escape_dir/secret.txt", "/static/hello.txt%00.png",
    "/static/%c0%ae%c0%ae/secret.txt", "/static/./hello.txt", "/static/nope.txt",
    "/static//etc/passwd", "/static/sub/..%252f..%252fsecret.txt",
])
def test_static_traversal_refused(srv, target):
    out = raw(srv, f"GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".encode())
    assert statuses(out) == [404]
    assert b"TOP SECRET" not in out and b"root:" not in out


def test_sse_pushed_from_another_greenlet(srv):
    out = raw(srv, b"GET /sse HTTP/1.1\r\nHost: h\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Content-Type: text/event-stream; charset=utf-8" in head
    assert b"Cache-Control: no-cache" in head and b"Connection: close" in head
    assert body == b"".join(b"event: tick\nid: %d\ndata: tick %d\ndata: second line\n\n" % (i, i)
                            for i in range(3))
    out = raw(srv, b"HEAD /sse HTTP/1.1\r\nHost: h\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK") and out.endswith(b"\r\n\r\n")
    assert_alive(srv)


def test_handler_errors(srv):
    status, _, body, _ = get(srv, "/teapot")
    assert status == 418 and body == b"short and stout\n"
    status, headers, _, _ = get(srv, "/raise")
    assert status == 500 and headers["Connection"] == "close"
    assert get(srv, "/noanswer")[0] == 500
    assert get(srv, "/nothing-here")[0] == 404
    assert_alive(srv)


def test_header_injection_refused(srv):
    out = raw(srv, b"GET /inject HTTP/1.1\r\nHost: h\r\n\r\n")
    assert statuses(out) == [500] and b"pwn" not in out
    assert "contains CR, LF or NUL" in srv.log()
    assert_alive(srv)


def test_slow_head_gets_408(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHo")
        out = s.recv(65536)  # after http_head_timeout (1 s), well before the socket timeout
        assert statuses(out) == [408]
        assert s.recv(100) == b""


def test_slowloris_trickle_gets_408(srv):
    # One byte every 0.2 s never completes the head within http_head_timeout (1 s).
    out = raw(srv, b"GET / HTTP/1.1\r\nHost: h\r\nX-Slow: " + b"a" * 20, chunk=1, pause=0.2)
    assert statuses(out) == [408]


def test_slow_body_gets_408(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc")
        out = s.recv(65536)
        assert statuses(out) == [408]


def test_idle_keep_alive_is_closed_quietly(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=15) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert s.recv(65536).endswith(b"hello")
        t0 = time.monotonic()
        assert s.recv(100) == b""  # http_keepalive_timeout = 2 s, no 408
        assert time.monotonic() - t0 > 1.0


KEEPALIVE_APP = """
import os
from geworker import Server
server = Server(os.environ["HTTP_URL"], http_keepalive_timeout=1.0)  # head timeout: 10 s

@server.on_message
def hello(conn, request):
    conn.send("hello")
"""


def test_keep_alive_timeout_counts_from_the_answer_not_the_accept(gunicorn):
    port = free_port()
    gunicorn(KEEPALIVE_APP, workers=1, env={"HTTP_URL": f"http://127.0.0.1:{port}"})
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        assert s.recv(65536).endswith(b"hello")
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert 0.9 < time.monotonic() - t0 < 3.0  # not at accept + 10 s


def test_body_too_large_413(srv):
    out = raw(srv, b"POST /echo HTTP/1.1\r\nHost: h\r\nContent-Length: 3000000\r\n\r\n"
                   + b"x" * 100000)
    assert statuses(out) == [413]
    chunk = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
    out = raw(srv, b"POST /echo HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                   + chunk * 40)
    assert statuses(out) == [413]
    assert_alive(srv)


def test_requests_per_connection_limit(srv):
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" * 60)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert statuses(data) == [200] * 50
    assert data.count(b"Connection: close") == 1


def _corpus_cases():
    return sorted(p.name for p in CORPUS.glob("*.http"))


def load_case(name: str) -> tuple[bytes, int, bool]:
    """A corpus file: LF line ends become CRLF, then \\r \\n \\xNN escapes apply."""
    import codecs

    stem, status, _ = name.rsplit(".", 2)
    text = (CORPUS / name).read_bytes().replace(b"\n", b"\r\n")
    data = codecs.escape_decode(text)[0]
    return data, int(status), stem.startswith("split-")


@pytest.mark.parametrize("name", _corpus_cases())
def test_corpus(srv, name):
    data, expected, split = load_case(name)
    out = raw(srv, data, chunk=3 if split else 0, pause=0.002 if split else 0.0)
    got = [s for s in statuses(out) if s >= 200]
    assert got and got[0] == expected, out[:300]
    if expected >= 400:
        assert got == [expected]  # answered once, then closed
    assert_alive(srv)


def test_corpus_is_rich():
    names = _corpus_cases()
    assert len(names) >= 30
    for must in ("smuggle", "oversized", "chunk", "method", "version", "split-"):
        assert any(must in n for n in names), must


def test_the_workers_survive_everything(srv):
    assert_alive(srv)
    assert "WORKER TIMEOUT" not in srv.log() and "exited with code" not in srv.log()


def test_access_log_uses_gunicorn_format(gunicorn, tmp_path):
    port = free_port()
    log_file = tmp_path / "access.log"
    g = gunicorn(
        f"""
from geworker import Server
server = Server("http://127.0.0.1:{port}")

@server.on_message
def on_message(conn, request):
    conn.send("hello" if request.path == "/" else {{"p": request.path}})
""",
        args=["--access-logfile", str(log_file), "--access-logformat",
              '%(h)s "%(r)s" %(s)s %(b)s "%(a)s" %({x-id}i)s %({content-type}o)s '
              '%(U)s %(q)s %(m)s'],
    )
    get_status = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    get_status.request("GET", "/", headers={"User-Agent": "ua/1", "X-Id": "r1"})
    assert get_status.getresponse().read() == b"hello"
    get_status.request("GET", "/j?x=1", headers={"User-Agent": "ua/2"})
    get_status.getresponse().read()
    get_status.close()
    from conftest import wait_until

    wait_until(lambda: log_file.exists() and log_file.read_text().count("\n") >= 2,
               what="access log lines")
    lines = log_file.read_text().splitlines()
    assert lines[0] == ('127.0.0.1 "GET / HTTP/1.1" 200 5 "ua/1" r1 '
                        'text/plain; charset=utf-8 /  GET')
    assert lines[1].startswith('127.0.0.1 "GET /j?x=1 HTTP/1.1" 200 10 "ua/2" - application/json')
    assert lines[1].endswith("/j x=1 GET")
    g.stop()


def test_reload_drains_http_connections(gunicorn):
    import signal
    import threading

    port = free_port()
    g = gunicorn(args=["--graceful-timeout", "60"], source=f"""
import gevent
from geworker import Server
server = Server("http://127.0.0.1:{port}")

@server.on_message
def on_message(conn, request):
    if request.path == "/slow":  # in flight until the worker starts draining
        for _ in range(300):
            if server.draining:
                break
            gevent.sleep(0.05)
    conn.send("done " + request.path)
""")
    idle = socket.create_connection(("127.0.0.1", port), timeout=30)
    idle.sendall(b"GET /first HTTP/1.1\r\nHost: h\r\n\r\n")
    assert idle.recv(65536).endswith(b"done /first")
    result: dict = {}

    def slow() -> None:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        c.request("GET", "/slow")
        r = c.getresponse()
        result["answer"] = (r.status, r.getheader("Connection"), r.read())

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    g.signal(signal.SIGHUP)
    assert idle.recv(100) == b""  # idle keep-alive closed at once, not after graceful_timeout
    assert time.monotonic() - t0 < 20
    t.join(20)
    assert result["answer"] == (200, "close", b"done /slow")
    idle.close()


CORK_SCRIPT = """
from gevent import monkey; monkey.patch_all()
import socket, gevent
from geworker import Server
from geworker.http.connection import HttpConnection

server = Server("http://127.0.0.1:1", name="cork")
server.on_message(lambda conn, request: conn.send("hello"))
mine, peer = socket.socketpair()
conn = HttpConnection(mine, "peer", server.stream_listeners[0], server)
sends, sender = [], conn._raw

class CountingSender:  # the real socket's send, counted
    def send(self, data):
        sends.append(len(data))
        return sender.send(data)

conn._raw = CountingSender()
gevent.spawn(conn.serve)
peer.sendall(b"".join(b"GET /%d HTTP/1.1\\r\\nHost: h\\r\\n\\r\\n" % i for i in range(16)))
data = b""
while data.count(b"hello") < 16:
    data += peer.recv(65536)
print(len(sends), data.count(b"HTTP/1.1 200 OK"))
"""


def test_pipelined_answers_are_written_together():
    out = subprocess.run([sys.executable, "-c", CORK_SCRIPT], capture_output=True, text=True,
                         timeout=30, check=True).stdout.split()
    # the first answer leaves before the pipeline is seen; the other 15 in one send
    assert out == ["2", "16"]
