"""Sans-IO tests of HttpProtocol: bytes in, requests and error answers out, no socket."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geworker.errors import LocalProtocolError
from geworker.http import EventStream, FileResponse, HTTPError, Request, Response
from geworker.http.multipart import parse_multipart, parse_options_header
from geworker.http.protocol import BODY, HEAD, IDLE, WAITING, HttpProtocol, HttpRequestError
from geworker.settings import Options

GET = b"GET /a%20b/c?x=1&y=2&x=3 HTTP/1.1\r\nHost: example\r\nCookie: a=1; b=\"two\"\r\n\r\n"
POST = (b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: 14\r\n\r\nname=J+D&n=%41")


def feed(proto: HttpProtocol, data: bytes) -> list[Request]:
    return proto.receive_data(data)


def status_of(exc: pytest.ExceptionInfo[HttpRequestError]) -> int:
    response = exc.value.response
    assert response.startswith(b"HTTP/1.1 ")
    assert b"Connection: close" in response
    return int(response[9:12])


def test_simple_get_fields():
    proto = HttpProtocol()
    assert proto.phase is IDLE
    [req] = feed(proto, GET)
    assert proto.phase is WAITING
    assert req.method == "GET"
    assert req.target == "/a%20b/c?x=1&y=2&x=3"
    assert req.path == "/a b/c"
    assert req.query_string == "x=1&y=2&x=3"
    assert req.query["x"] == "1" and req.query.get_all("x") == ["1", "3"]
    assert req.headers["HOST"] == "example" and "cookie" in req.headers
    assert req.cookies == {"a": "1", "b": "two"}
    assert req.http_version == "1.1" and req.keep_alive
    assert req.body == b"" and not req.is_websocket_upgrade
    assert req.h11_request.target == b"/a%20b/c?x=1&y=2&x=3"


def test_form_body_and_json():
    proto = HttpProtocol()
    [req] = feed(proto, POST)
    assert req.form["name"] == "J D" and req.form["n"] == "A"
    assert req.text == "name=J+D&n=%41"
    proto.encode("ok")
    assert proto.next_cycle() == []
    body = b'{"a": [1, 2]}'
    [req] = feed(proto, b"PUT /j HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
    assert req.json == {"a": [1, 2]}
    proto.next_cycle()
    [req] = feed(proto, b"PUT /j HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n{x}")
    with pytest.raises(HTTPError) as exc:
        _ = req.json
    assert exc.value.status == 400


def test_request_split_at_every_byte_boundary():
    wire = POST
    for cut in range(1, len(wire)):
        proto = HttpProtocol()
        first = feed(proto, wire[:cut])
        assert first == []
        assert proto.phase in (HEAD, BODY)
        [req] = feed(proto, wire[cut:])
        assert req.form.get_all("name") == ["J D"]


def test_request_byte_by_byte():
    proto = HttpProtocol()
    got = []
    for i in range(len(GET)):
        got += feed(proto, GET[i:i + 1])
    assert len(got) == 1 and got[0].path == "/a b/c"


def test_pipelined_requests_in_one_chunk_come_in_order():
    proto = HttpProtocol()
    wire = b"".join(b"GET /%d HTTP/1.1\r\nHost: h\r\n\r\n" % i for i in range(5)) + POST
    [req] = feed(proto, wire)
    paths = [req.path]
    while True:
        proto.encode("x")
        more = proto.next_cycle()
        if not more:
            break
        paths.append(more[0].path)
    assert paths == ["/0", "/1", "/2", "/3", "/4", "/form"]
    assert proto.phase is IDLE


def test_bytes_during_response_wait_for_next_cycle():
    proto = HttpProtocol()
    [_req] = feed(proto, b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HT")
    assert feed(proto, b"TP/1.1\r\nHost: h\r\n\r\n") == []  # still answering /1
    [nxt] = proto.next_cycle()
    assert nxt.path == "/2"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30),
       st.binary(max_size=300))
def test_any_chunking_of_a_pipelined_stream(cuts, body):
    wire = (b"POST /p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
            + (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
            + b"GET /g HTTP/1.1\r\nHost: h\r\n\r\n")
    proto = HttpProtocol()
    got: list[Request] = []
    pos = 0
    for n in cuts * 200:
        if pos >= len(wire):
            break
        got += feed(proto, wire[pos:pos + n])
        pos += n
        while got and proto.phase is WAITING and len(got) < 2:
            proto.encode(b"")
            got += proto.next_cycle()
            if len(got) == 1:
                break
    assert [r.path for r in got] == ["/p", "/g"]
    assert got[0].body == body


@pytest.mark.parametrize("wire,status", [
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
     400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n", 400),
    (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    (b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
    (b"GET /\r\n\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400),
    (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11000000\r\n\r\n", 413),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 17000 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 17000, 431),
])
def test_bad_requests_get_error_answers(wire, status):
    proto = HttpProtocol()
    with pytest.raises(HttpRequestError) as exc:
        feed(proto, wire)
    assert exc.value.status == status
    assert status_of(exc) == status


def test_chunked_body_over_limit_is_413():
    proto = HttpProtocol(Options(http_max_body_size=100))
    feed(proto, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
    with pytest.raises(HttpRequestError) as exc:
        for _ in range(10):
            feed(proto, b"20\r\n" + b"x" * 32 + b"\r\n")
    assert exc.value.status == 413


def test_large_body_spills_to_a_file():
    proto = HttpProtocol()
    size = 3 * 1024 * 1024
    feed(proto, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % size)
    got = []
    for _ in range(size // 65536):
        got += feed(proto, b"y" * 65536)
    [req] = got
    assert not isinstance(req._body, bytes)
    assert req.stream.read(10) == b"y" * 10
    assert len(req.body) == size
    req.close()


def test_expect_100_continue():
    proto = HttpProtocol()
    feed(proto, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
    assert proto.data_to_send() == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert proto.data_to_send() == b""
    [req] = feed(proto, b"ok")
    assert req.body == b"ok"


def test_keep_alive_rules():
    proto = HttpProtocol()
    [req] = feed(proto, b"GET / HTTP/1.0\r\n\r\n")
    assert not req.keep_alive
    assert b"Connection: close" in proto.encode("x")
    proto = HttpProtocol()
    feed(proto, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert b"Connection: keep-alive" in proto.encode("x")
    proto = HttpProtocol(Options(http_max_requests_per_connection=2))
    feed(proto, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"Connection" not in proto.encode("x")
    proto.next_cycle()
    feed(proto, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert b"Connection: close" in proto.encode("x")


def test_encode_shortcuts_and_head():
    proto = HttpProtocol()
    feed(proto, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = proto.encode("héllo")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"Content-Type: text/plain; charset=utf-8\r\n" in out
    assert out.endswith(b"Content-Length: 6\r\n\r\nh\xc3\xa9llo")
    assert out.endswith(b"\r\n\r\nh\xc3\xa9llo")
    out = proto.encode({"a": 1})
    assert b"application/json" in out and out.endswith(b'{"a":1}')
    proto.next_cycle()
    feed(proto, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = proto.encode(Response(b"12345", 201, {"X-A": "b"}))
    assert out.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"Content-Length: 5\r\n" in out and out.endswith(b"\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        proto.encode(object())


@pytest.mark.parametrize("name,value", [
    ("X-A", "a\r\nSet-Cookie: evil=1"), ("X-A", "a\nb"), ("X-A", "a\rb"), ("X-A", "a\x00"),
    ("Bad Name", "v"), ("X:Y", "v"), ("", "v"),
])
def test_header_injection_is_refused(name, value):
    proto = HttpProtocol()
    feed(proto, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    with pytest.raises(LocalProtocolError):
        proto.encode(Response("x", headers=[(name, value)]))


def test_streamed_head_is_chunked_for_http11_only():
    proto = HttpProtocol()
    feed(proto, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head, chunked = proto.encode_head(Response(iter([b"a"])), None)
    assert chunked and b"Transfer-Encoding: chunked" in head and proto.keep_alive
    proto = HttpProtocol()
    feed(proto, b"GET / HTTP/1.0\r\n\r\n")
    head, chunked = proto.encode_head(Response(iter([b"a"])), None)
    assert not chunked and b"Transfer-Encoding" not in head and not proto.keep_alive
    proto = HttpProtocol()
    feed(proto, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    head, chunked = proto.encode_head(Response(iter([b"a"]), headers={"Content-Length": "1"}),
                                      None)
    assert not chunked and b"Content-Length: 1\r\n" in head


def test_websocket_upgrade_pauses_and_keeps_trailing_bytes():
    proto = HttpProtocol()
    [req] = feed(proto, b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x81\x85frame")
    assert req.is_websocket_upgrade
    assert feed(proto, b"more") == []
    assert proto.take_trailing_data() == b"\x81\x85framemore"


def test_cookies_set_and_delete():
    r = Response("x")
    r.set_cookie("sid", "abc", max_age=60, path="/", domain="example.com", secure=True,
                 httponly=True, samesite="lax", partitioned=True)
    r.delete_cookie("old")
    cookies = [v for k, v in r.headers if k == "Set-Cookie"]
    assert cookies[0] == ("sid=abc; Max-Age=60; Path=/; Domain=example.com; Secure; HttpOnly; "
                          "SameSite=Lax; Partitioned")
    assert cookies[1].startswith("old=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    for bad in ("a;b", "a\r\nb", "a b"):
        with pytest.raises(LocalProtocolError):
            r.set_cookie("x", bad)
    with pytest.raises(LocalProtocolError):
        r.set_cookie("x", "y", path="/;evil")


def test_multipart_streamed_to_files():
    boundary = "----b0undary"
    big = b"\x00\xff" * 100_000
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhé\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a b.bin\""
            f"\r\nContent-Type: application/x-thing\r\n\r\n").encode() + big + (
            f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"e\"; "
            f"filename*=UTF-8''%C3%A9.txt\r\n\r\n\r\n--{boundary}--\r\n").encode()
    fields, files = parse_multipart(io.BytesIO(body),
                                    f"multipart/form-data; boundary={boundary}")
    assert fields == [("title", "hé")]
    (n1, up), (n2, empty) = files
    assert (n1, up.filename, up.content_type, up.size) == ("up", "a b.bin",
                                                          "application/x-thing", len(big))
    assert up.file._rolled  # on disk, not in memory
    assert up.read() == big
    assert (n2, empty.filename, empty.size) == ("e", "é.txt", 0)


@pytest.mark.parametrize("body", [
    b"no boundary at all",
    b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\ntruncated",
    b"--B\r\nX: y\r\n\r\nv\r\n--B--",
    b"--B\r\nContent-Disposition: form-data; name=\"a\"\r\n" + b"x" * 20000,
])
def test_multipart_malformed_is_400(body):
    with pytest.raises(HTTPError) as exc:
        parse_multipart(io.BytesIO(body), "multipart/form-data; boundary=B")
    assert exc.value.status == 400


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=70))
def test_multipart_round_trip_any_bytes(data, read_size):
    import geworker.http.multipart as mp

    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x\"\r\n\r\n"
            + data + b"\r\n--XyZ--\r\n")
    old = mp.READ_SIZE
    mp.READ_SIZE = read_size
    try:
        _, [(_, up)] = parse_multipart(io.BytesIO(body), 'multipart/form-data; boundary="XyZ"')
    finally:
        mp.READ_SIZE = old
    assert up.read() == data


def test_options_header():
    assert parse_options_header('form-data; name="a\\"b"; filename=c.txt') == (
        "form-data", {"name": 'a"b', "filename": "c.txt"})


def test_file_response_conditionals(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789")

    def request(headers: bytes) -> Request:
        proto = HttpProtocol()
        [req] = proto.receive_data(b"GET /f HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n")
        return req

    resp = FileResponse(path)
    short, f, length = resp.prepare(request(b""))
    assert short is None and length == 10 and f.read() == b"0123456789"
    f.close()
    etag = resp.get_header("etag")
    assert resp.get_header("content-type") == "text/plain; charset=utf-8"
    short, f, _ = FileResponse(path).prepare(request(b"If-None-Match: " + etag.encode() + b"\r\n"))
    assert short.status == 304 and f is None
    lm = resp.get_header("last-modified").encode()
    short, _, _ = FileResponse(path).prepare(request(b"If-Modified-Since: " + lm + b"\r\n"))
    assert short.status == 304
    r = FileResponse(path)
    short, f, length = r.prepare(request(b"Range: bytes=2-4\r\n"))
    assert r.status == 206 and length == 3 and f.read(length) == b"234"
    assert r.get_header("content-range") == "bytes 2-4/10"
    f.close()
    r = FileResponse(path)
    _, f, length = r.prepare(request(b"Range: bytes=-3\r\n"))
    assert f.read(length) == b"789"
    f.close()
    short, _, _ = FileResponse(path).prepare(request(b"Range: bytes=20-\r\n"))
    assert short.status == 416 and short.get_header("content-range") == "bytes */10"
    with pytest.raises(HTTPError):
        FileResponse(tmp_path / "missing").prepare(None)


def test_event_stream_encoding():
    assert EventStream.encode_event("a\nb", event="up", id="7") == \
        b"event: up\nid: 7\ndata: a\ndata: b\n\n"
    with pytest.raises(LocalProtocolError):
        EventStream.encode_event("x", event="a\nb")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_requests_only_raise_http_errors(data):
    base = bytearray(POST + b"GET /x?y HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                     b"\r\n3\r\nabc\r\n0\r\n\r\n")
    for _ in range(data.draw(st.integers(0, 6))):
        pos = data.draw(st.integers(0, len(base) - 1))
        op = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        byte = data.draw(st.sampled_from(b"\r\n :;,-0123456789aAzZ\x00\x7f\xff\t"))
        if op == "flip":
            base[pos] = byte
        elif op == "insert":
            base.insert(pos, byte)
        elif len(base) > 1:
            del base[pos]
    proto = HttpProtocol(Options(http_max_body_size=1000, http_max_head_size=300))
    try:
        got = feed(proto, bytes(base))
        while got and proto.phase is WAITING:
            req = got[0]
            _ = (req.method, req.path, req.query, req.headers, req.cookies, req.body, req.text)
            proto.encode("ok")
            got = proto.next_cycle()
    except HttpRequestError as exc:
        assert exc.status in (400, 413, 431, 501, 505)


def test_cached_response_headers_stay_checked_and_bounded():
    from geworker.http import protocol as http_protocol

    proto = HttpProtocol(Options())
    proto.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    ok = Response(b"x", 200, [("X-Same", "v"), ("Content-Length", "1")])
    for _ in range(2):  # the second time from the cache: the same bytes
        head, _ = proto.encode_head(ok, 1)
        assert head.count(b"X-Same: v\r\n") == 1 and head.count(b"Content-Length") == 1
    for _ in range(2):  # a refused header is never cached
        with pytest.raises(LocalProtocolError):
            proto.encode_head(Response(b"x", 200, [("X-Bad", "a\r\nSet-Cookie: x=1")]), 1)
    for i in range(http_protocol._HEADER_LINES_MAX + 10):
        http_protocol._header_line("X-N", str(i))
    assert len(http_protocol._HEADER_LINES) <= http_protocol._HEADER_LINES_MAX
