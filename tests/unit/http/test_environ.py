"""One environ builder: the CGI variables the WSGI application and the access log share."""

from __future__ import annotations

import h11

from geworker.http.environ import cgi_environ
from geworker.http.models import Request
from geworker.http.protocol import HttpProtocol
from geworker.http.wsgi import build_environ
from geworker.listener import Listener


def request(target: bytes, headers: list[tuple[bytes, bytes]]) -> Request:
    event = h11.Request(method=b"GET", target=target, headers=[(b"Host", b"h"), *headers])
    return Request(event, b"", ("10.0.0.1", 4242))


class Conn:
    """What the builders read of a connection."""

    def __init__(self) -> None:
        self.listener = Listener("http://127.0.0.1:8080", HttpProtocol, "tcp", "127.0.0.1", 8080)
        self.remote_address = ("10.0.0.1", 4242)


def test_cgi_variables():
    req = request(b"/a%20b/%C3%A9?x=1", [(b"X-Id", b"1"), (b"X-Id", b"2"), (b"Cookie", b"a=1"),
                                         (b"Cookie", b"b=2"), (b"Content-Type", b"text/plain"),
                                         (b"X_Under", b"dropped")])
    conn = Conn()
    env = cgi_environ(req, conn.listener, conn.remote_address)
    assert env["REQUEST_METHOD"] == "GET" and env["RAW_URI"] == "/a%20b/%C3%A9?x=1"
    assert env["PATH_INFO"] == "/a b/\xc3\xa9"  # PEP 3333: bytes as latin-1
    assert env["QUERY_STRING"] == "x=1" and env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert (env["REMOTE_ADDR"], env["REMOTE_PORT"]) == ("10.0.0.1", "4242")
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("127.0.0.1", "8080")
    assert env["HTTP_X_ID"] == "1,2" and env["HTTP_COOKIE"] == "a=1; b=2"
    assert env["CONTENT_TYPE"] == "text/plain" and "HTTP_CONTENT_TYPE" not in env
    assert not any("UNDER" in key for key in env)


def test_absolute_form_target():
    env = cgi_environ(request(b"http://h/p?q=1", []), Conn().listener, None)
    assert (env["PATH_INFO"], env["QUERY_STRING"], env["REMOTE_ADDR"]) == ("/p", "q=1", "")


def test_wsgi_environ_is_the_cgi_environ_plus_wsgi_keys():
    conn = Conn()
    req = request(b"/x?y=2", [(b"User-Agent", b"ua")])
    env = build_environ(conn, req)
    cgi = cgi_environ(req, conn.listener, conn.remote_address)
    assert {k: v for k, v in env.items() if k in cgi} == cgi
    assert set(env) - set(cgi) == {
        "wsgi.version", "wsgi.url_scheme", "wsgi.input", "wsgi.input_terminated", "wsgi.errors",
        "wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "geworker.connection",
        "geworker.request"}
    assert env["geworker.connection"] is conn and env["wsgi.url_scheme"] == "http"
