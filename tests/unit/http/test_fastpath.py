"""The fast request parser against h11, which defines what is correct.

``parse_fast`` may decline anything (h11 then parses it), but whatever it
accepts h11 must accept too, with the same method, target, version, headers,
body and leftover bytes. And :class:`HttpProtocol` must behave the same
with the fast parser as without it (same requests, same errors, same state),
on generated requests, on mutated ones, and on the whole raw request corpus.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import geworker.http.protocol as http_protocol
from geworker.http import Request
from geworker.http.models import RequestHead
from geworker.http.protocol import HttpProtocol, HttpRequestError, parse_fast
from geworker.settings import Options

CORPUS = Path(__file__).resolve().parent.parent.parent / "corpus" / "http"
SETTINGS = settings(max_examples=400, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def h11_parse(data: bytes) -> tuple[str, Any, bytes, bytes]:
    """What h11 makes of ``data``: ``(verdict, request event, body, leftover)``.

    The verdict is "ok" (a whole request), "more" (h11 needs more bytes) or "error".
    """
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    event = None
    body = b""
    try:
        while True:
            ev = conn.next_event()
            if isinstance(ev, h11.Request):
                event = ev
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                return "ok", event, body, conn.trailing_data[0]
            else:
                return "more", event, body, b""
    except h11.RemoteProtocolError:
        return "error", None, b"", b""


def check_fast_against_h11(data: bytes) -> bool:
    """Assert that what the fast parser accepts h11 parses the same; True if it accepted."""
    parsed = parse_fast(data)
    if parsed is None:
        return False
    head, start, length = parsed
    verdict, event, body, leftover = h11_parse(data)
    if start + length > len(data):  # the body is not all there: h11 must wait for it
        assert verdict == "more", (data, verdict)
    else:
        assert verdict == "ok", (data, verdict)
        assert data[start:start + length] == body
        assert data[start + length:] == leftover
    assert event is not None
    assert head.method == event.method
    assert head.target == event.target
    assert head.http_version == event.http_version
    assert head.headers == list(event.headers)
    assert head.raw_headers == event.headers.raw_items()
    # The h11 event built on demand is the one h11 parsed.
    rebuilt = Request(head).h11_request
    assert rebuilt.headers.raw_items() == event.headers.raw_items()
    assert (rebuilt.method, rebuilt.target, rebuilt.http_version) == (
        event.method, event.target, event.http_version)
    return True


# -- the protocol with and without the fast parser -----------------------------------


def run_protocol(stream: bytes, chunk: int, fast: bool,
                 options: Options | None = None) -> list[Any]:
    """Feed ``stream`` in ``chunk``-byte pieces; answer each request; record everything."""
    with pytest.MonkeyPatch.context() as m:
        if not fast:
            m.setattr(http_protocol, "parse_fast", lambda data: None)
        proto = HttpProtocol(options or Options())
        log: list[Any] = []
        pieces = [stream[i:i + chunk] for i in range(0, len(stream), chunk)] or [b""]
        try:
            for piece in pieces:
                if not piece:
                    continue
                messages = proto.receive_data(piece)
                log.append(("phase", proto.phase, proto.data_to_send()))
                while messages:
                    req = messages[0]
                    log.append(describe(req, proto))
                    if req.is_websocket_upgrade:
                        log.append(("trailing", proto.take_trailing_data()))
                        return log
                    log.append(("answer", proto.encode("ok")))
                    if not proto.keep_alive:
                        return log
                    messages = proto.next_cycle()
                    log.append(("phase", proto.phase, proto.data_to_send()))
        except HttpRequestError as exc:
            log.append(("error", exc.status))
        log.append(("end", proto.phase, proto.has_partial_message))
        return log


def describe(req: Request, proto: HttpProtocol) -> tuple[Any, ...]:
    body = req.body
    return ("request", req.method, req.target, req.http_version, req.headers.items(),
            body, req.keep_alive, req.is_websocket_upgrade, proto.head_only, proto.keep_alive,
            proto.requests, proto.connection_header())


def same_behaviour(stream: bytes, chunk: int = 1 << 20) -> list[Any]:
    slow = run_protocol(stream, chunk, False)
    fast = run_protocol(stream, chunk, True)
    # Answers carry a Date header: compare them without it.
    assert _strip_dates(fast) == _strip_dates(slow), stream
    return fast


def _strip_dates(log: list[Any]) -> list[Any]:
    out = []
    for entry in log:
        if entry[0] == "answer":
            entry = ("answer", b"\r\n".join(line for line in entry[1].split(b"\r\n")
                                            if not line.startswith(b"Date: ")))
        out.append(entry)
    return out


# -- generated requests ---------------------------------------------------------------

_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.text(alphabet=_TCHARS, min_size=1, max_size=12).map(str.encode)
methods = st.one_of(st.sampled_from([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS",
                                     b"PATCH", b"CONNECT", b"TRACE", b"get", b"PRI"]), tokens)
targets = st.one_of(
    st.sampled_from([b"/", b"/a?b=c", b"/%20x", b"*", b"http://h/p", b"//x", b"/a#f"]),
    st.binary(max_size=12).map(lambda b: b"/" + b),
)
versions = st.sampled_from([b"1.1", b"1.1", b"1.1", b"1.0", b"2.0", b"0.9", b"1.2", b"11"])
names = st.one_of(
    st.sampled_from([b"Host", b"host", b"HOST", b"Content-Length", b"content-length",
                     b"Connection", b"Transfer-Encoding", b"Upgrade", b"Expect", b"Cookie",
                     b"User-Agent", b"Accept", b"X-Forwarded-For"]),
    tokens,
    st.binary(min_size=1, max_size=6),
)
values = st.one_of(
    st.sampled_from([b"", b"example.com", b"0", b"5", b"3", b"05", b"+5", b"-1", b"5, 5", b"5,6",
                     b" 5", b"chunked", b"close", b"keep-alive", b"Upgrade", b"upgrade",
                     b"websocket", b"100-continue", b"a b", b"a\tb", b"caf\xc3\xa9", b"\x7f",
                     b"99999999999999999999999", b"1" * 19, b"1" * 18]),
    st.text(alphabet=" \t!~azAZ09;=,:/\"", max_size=10).map(str.encode),
    st.binary(max_size=6),
)
ows = st.sampled_from([b"", b" ", b"  ", b"\t", b" \t"])
eols = st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b" \r\n"])


@st.composite
def requests(draw: Any) -> bytes:
    """A request: mostly well formed, with a sprinkle of every oddity."""
    eol = draw(eols)
    parts = [draw(methods) + b" " + draw(targets) + b" HTTP/" + draw(versions) + eol]
    if draw(st.booleans()):
        parts.append(b"Host: " + draw(st.sampled_from([b"example.com", b"127.0.0.1:80", b""]))
                     + b"\r\n")
    for _ in range(draw(st.integers(0, 5))):
        parts.append(draw(names) + b":" + draw(ows) + draw(values) + draw(ows) + draw(eols))
    if draw(st.integers(0, 9)) == 0:
        parts.append(b" folded\r\n")
    body = draw(st.binary(max_size=8))
    if body and draw(st.booleans()):
        parts.append(b"Content-Length: " + str(len(body)).encode() + b"\r\n")
    parts.append(draw(eols))
    parts.append(body)
    if draw(st.booleans()):
        parts.append(b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    return b"".join(parts)


@st.composite
def mutated(draw: Any) -> bytes:
    """A well-formed request with a few bytes inserted, deleted or replaced."""
    data = bytearray(b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
                     b"Content-Length: 4\r\n\r\nbodyPOST / HTTP/1.0\r\n\r\n")
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.integers(0, len(data)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        byte = draw(st.sampled_from([0, 9, 10, 13, 32, 58, 0x7F, 0x80, 0xFF, ord("a"), ord(",")]))
        if op == "insert":
            data[where:where] = bytes([byte])
        elif where < len(data):
            if op == "delete":
                del data[where]
            else:
                data[where] = byte
    return bytes(data)


WRK = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
BROWSER = (b"GET /search?q=x HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11)\r\n"
           b"Accept: text/html,*/*;q=0.8\r\nAccept-Language: en-US,en;q=0.5\r\n"
           b"Cookie: a=1; b=2\r\nConnection: keep-alive\r\n\r\n")


@SETTINGS
@given(requests())
@example(WRK)
@example(BROWSER)
@example(b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n")
def test_fast_parser_agrees_with_h11_on_generated_requests(data: bytes) -> None:
    check_fast_against_h11(data)


@SETTINGS
@given(mutated())
def test_fast_parser_agrees_with_h11_on_mutated_requests(data: bytes) -> None:
    check_fast_against_h11(data)


@SETTINGS
@given(st.one_of(requests(), mutated()), st.sampled_from([1, 3, 7, 1 << 20]))
def test_protocol_behaves_the_same_with_and_without_fast_parser(data: bytes,
                                                                 chunk: int) -> None:
    same_behaviour(data, chunk)


def test_common_requests_take_the_fast_path() -> None:
    # The generators above must exercise acceptance, or the differential tests prove nothing.
    for data in (WRK, BROWSER, b"HEAD / HTTP/1.0\r\n\r\n",
                 b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhi"):
        assert check_fast_against_h11(data), data


@pytest.mark.parametrize("data", [
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",  # obs-fold
    b"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n",  # incomplete head
])
def test_unusual_requests_are_left_to_h11(data: bytes) -> None:
    assert parse_fast(data) is None
    same_behaviour(data)


def test_limits_apply_to_fast_parsed_requests() -> None:
    small = Options(http_max_head_size=256, http_max_body_size=4)
    big_head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + b"x" * 300 + b"\r\n\r\n"
    big_body = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
    for data, status in ((big_head, 431), (big_body, 413)):
        assert parse_fast(data) is not None
        for fast in (False, True):
            log = run_protocol(data, 1 << 20, fast, small)
            assert ("error", status) in log, (fast, log)


def test_pipelined_requests_split_anywhere() -> None:
    post = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    stream = WRK * 3 + BROWSER + post + WRK

    def outcome(log: list[Any]) -> list[Any]:
        return [e for e in _strip_dates(log) if e[0] in ("request", "answer", "error")]

    expected = outcome(same_behaviour(stream))
    assert sum(1 for e in expected if e[0] == "request") == 6
    for chunk in (1, 2, 5, 13, 40, 41, 64):
        for fast in (True, False):
            assert outcome(run_protocol(stream, chunk, fast)) == expected, (chunk, fast)


def test_fast_parsed_head_is_a_request_head() -> None:
    parsed = parse_fast(BROWSER)
    assert parsed is not None
    head = parsed[0]
    assert isinstance(head, RequestHead)
    req = Request(head)
    assert req.headers["user-agent"] == "Mozilla/5.0 (X11)"
    assert req.cookies == {"a": "1", "b": "2"}
    assert req.query["q"] == "x"


def _corpus() -> list[str]:
    return sorted(p.name for p in CORPUS.glob("*.http"))


@pytest.mark.parametrize("name", _corpus())
def test_corpus_through_both_paths(name: str) -> None:
    text = (CORPUS / name).read_bytes().replace(b"\n", b"\r\n")
    data = codecs.escape_decode(text)[0]
    check_fast_against_h11(data)
    for chunk in (1 << 20, 3):
        same_behaviour(data, chunk)


def test_compiled_h11_is_used_when_installed() -> None:
    # The suite runs with and without the "fast" extra (h11-mypyc).
    try:
        import h11_mypyc  # noqa: F401
    except ImportError:
        expected = "h11"
    else:
        expected = "h11_mypyc"
    assert expected == http_protocol.H11_ENGINE
    proto = HttpProtocol()
    chunked = (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3\r\nabc\r\n0\r\n\r\n")
    [req] = proto.receive_data(chunked)
    assert req.body == b"abc"
    assert type(req.head).__module__.startswith(expected)


@pytest.mark.parametrize("first", [WRK, b"GET / HTTP/1.1\r\nHost: a\r\nExpect: x\r\n\r\n"])
def test_data_pipelined_while_answering_is_bounded_and_kept(first: bytes) -> None:
    # The first request is fast-parsed (WRK) or left to h11 (Expect): both keep
    # what arrives during the answer, in order, and refuse more than a request's worth.
    options = Options(http_max_head_size=1024, http_max_body_size=4096)
    proto = HttpProtocol(options)
    [req] = proto.receive_data(first)
    body = bytes(range(256)) * 16
    nxt = b"POST /n HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n" + body
    for i in range(0, len(nxt), 100):
        assert proto.receive_data(nxt[i:i + 100]) == []
    [req] = proto.next_cycle()
    assert (req.target, req.body) == ("/n", body)
    proto = HttpProtocol(options)
    proto.receive_data(first)
    with pytest.raises(HttpRequestError) as exc:
        for _ in range(100):
            proto.receive_data(b"x" * 100)
    assert exc.value.status == 413


def test_h11_request_of_a_fast_parsed_head_comes_from_the_engine_in_use() -> None:
    [req] = HttpProtocol().receive_data(WRK)
    assert isinstance(req.head, RequestHead)
    assert type(req.h11_request).__module__.startswith(http_protocol.H11_ENGINE)
    assert req.h11_request.headers.raw_items() == [(b"Host", b"127.0.0.1:8080")]


def test_large_fast_parsed_body_is_spilled_like_h11s() -> None:
    from geworker.http.models import BODY_MEMORY_LIMIT

    body = b"z" * (BODY_MEMORY_LIMIT + 10)
    post = b"POST /big HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    for fast in (True, False):
        with pytest.MonkeyPatch.context() as m:
            if not fast:
                m.setattr(http_protocol, "parse_fast", lambda data: None)
            proto = HttpProtocol()
            proto.receive_data(WRK)
            for i in range(0, len(post), 65536):  # arrives while the first is answered
                proto.receive_data(post[i:i + 65536])
            [req] = proto.next_cycle()
            assert not isinstance(req._body, bytes), fast  # in a temporary file
            assert req.body == body
            req.close()


def protocol_verdict(data: bytes, chunk: int) -> int | None:
    """The status HttpProtocol gives ``data`` fed in ``chunk``-byte pieces: 200 for a
    request, the error status, or None while it waits for more (the server's 408)."""
    proto = HttpProtocol()
    try:
        for i in range(0, len(data), chunk):
            if proto.receive_data(data[i:i + chunk]):
                return 200
    except HttpRequestError as exc:
        return exc.status
    return None


@pytest.mark.parametrize("name", _corpus())
def test_corpus_status_at_the_protocol(name: str) -> None:
    # The same verdict the integration test asks of a real server, without sockets.
    expected = int(name.rsplit(".", 2)[1])
    text = (CORPUS / name).read_bytes().replace(b"\n", b"\r\n")
    data = codecs.escape_decode(text)[0]
    for chunk in (1 << 20, 7, 1):
        verdict = protocol_verdict(data, chunk)
        want = None if expected == 408 else 200 if expected < 400 else expected
        assert verdict == want, (name, chunk)


@pytest.mark.parametrize("limit,value,status", [
    ("http_max_request_line", 0, 200), ("http_max_header_fields", 0, 200),
    ("http_max_header_field_size", 0, 200)])
def test_gunicorn_limits_can_be_lifted(limit: str, value: int, status: int) -> None:
    big = {"http_max_request_line": b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
           "http_max_header_fields": b"GET / HTTP/1.1\r\nHost: h\r\n"
           + b"".join(b"X-%d: v\r\n" % i for i in range(200)) + b"\r\n",
           "http_max_header_field_size": b"GET / HTTP/1.1\r\nHost: h\r\nX: "
           + b"v" * 9000 + b"\r\n\r\n"}[limit]
    assert protocol_verdict(big, 1 << 20) in (414, 431)
    proto = HttpProtocol(Options(**{limit: value}))
    assert len(proto.receive_data(big)) == 1
