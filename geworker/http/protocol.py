"""HTTP/1.1 server protocol over h11 (sans-IO).

:class:`HttpProtocol` parses requests with h11, enforces the listener's
limits and encodes responses. It never touches a socket: the transport loop
(:class:`geworker.http.connection.HttpConnection`) feeds it bytes, asks for
timeouts by reading :attr:`HttpProtocol.phase`, and writes what it returns.

Request side. h11 parses; on top of it this class refuses what h11 lets
through but a front proxy could read differently (``Content-Length`` with
``Transfer-Encoding``: 400) and HTTP versions other than 1.0/1.1 (505), and
applies the head and body size limits (431, 413). Every refusal is a
:class:`HttpRequestError` carrying the bytes of the error answer; the connection is
closed after it. A complete request (head and whole body) is returned by
:meth:`HttpProtocol.receive_data`; bodies above
:data:`geworker.http.BODY_MEMORY_LIMIT` are spilled to a temporary file.

Fast parser. The common request -- a complete ``GET``/``HEAD``/``POST``/
``PUT``/``DELETE``/``OPTIONS``/``PATCH`` head in origin form, HTTP/1.1 or
1.0, plain ASCII tokens and values, no body or a single ``Content-Length``
with the whole body already received -- is validated by one regular expression
and split with bytes operations (:func:`parse_fast`). Anything else (a
partial head, chunked bodies, obs-fold, odd whitespace, a missing or repeated
``Host``, ``Upgrade``, ``Expect``, non-ASCII bytes, ...) is handed, bytes
untouched, to h11, which stays the engine that defines correctness: the fast
parser only ever accepts what h11 accepts, with the same result (checked by
differential tests), and never refuses anything itself. Both paths then go
through the same limit checks. When ``h11-mypyc`` is installed (``pip install
geworker[fast]``), its compiled build of h11 is used (:data:`H11_ENGINE`).

Response side. h11 is not used to write: the head is built directly (cheaper,
and header values are validated against CR/LF/NUL here). So when h11 parses a
request cycle, it is a fresh ``h11.Connection`` fed the bytes that followed
the previous request (:meth:`HttpProtocol.next_cycle`); pipelined requests are
therefore answered strictly in order.

WebSocket seam. A request carrying ``Upgrade: websocket`` is returned with
``request.is_websocket_upgrade`` set and ``request.h11_request`` holding the
``h11.Request`` event; parsing stops there (h11 is ``PAUSED``) and the bytes
the client sent after the head are available once through
:meth:`HttpProtocol.take_trailing_data`. ``HttpConnection`` then calls
``geworker.websocket.connection.upgrade_from_http(conn, request, trailing)``,
which accepts or refuses the upgrade and takes the socket over.

Error answers. Every error answer is an
:func:`~geworker.http.responses.error_response`; :func:`encode_closing` writes
one that closes the connection (refused requests, timeouts, refused WebSocket
handshakes), :meth:`HttpProtocol.encode` one inside a request cycle (an
:class:`~geworker.http.HTTPError` raised by a callback).
"""

from __future__ import annotations

import enum
import re
import tempfile
import time
from collections.abc import Iterable
from email.utils import formatdate
from typing import Any, BinaryIO

from ..errors import LocalProtocolError, RemoteProtocolError
from ..protocols.base import Protocol
from ..settings import Options
from ._h11 import H11_ENGINE, h11
from .models import BODY_MEMORY_LIMIT, Request, RequestHead
from .responses import (
    JSON,
    OCTETS,
    TEXT,
    Response,
    _dumps,
    check_header,
    error_response,
    make_response,
    reason_phrase,
)

__all__ = ["H11_ENGINE", "HttpPhase", "HttpProtocol", "HttpRequestError", "check_raw_head",
           "encode_closing",
           "parse_fast", "status_line"]



class HttpPhase(enum.Enum):
    """Where the current request cycle is; the transport loop picks its timeout from it."""

    IDLE = "idle"  # between requests: nothing of the next one received
    HEAD = "head"  # part of a request head received
    BODY = "body"  # head complete, body in progress
    WAITING = "waiting"  # request complete, its response not finished


IDLE, HEAD, BODY, WAITING = HttpPhase.IDLE, HttpPhase.HEAD, HttpPhase.BODY, HttpPhase.WAITING


class HttpRequestError(RemoteProtocolError):
    """The client sent a request that is answered with an error status and a close.

    Not to be confused with :class:`~geworker.http.HTTPError`, which a
    callback raises to answer a valid request with an error status.

    Attributes:
        status: the HTTP status sent (400, 413, 431, 501, 505).
    """

    def __init__(self, status: int, reason: str) -> None:
        if len(reason) > 200:  # h11 quotes the offending line: keep log lines short
            reason = reason[:200] + "..."
        super().__init__(f"HTTP {status}: {reason}", encode_closing(error_response(status)))
        self.status = status


# -- the fast parser -------------------------------------------------------------

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+"
_VALUE = rb"[\x21-\x7e]+(?:[ \t]+[\x21-\x7e]+)*"  # ASCII only: obs-text goes to h11
#: A whole request head of the common kind, matched from the start of the buffer.
_FAST_HEAD = re.compile(
    rb"(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) (/[\x21-\x7e]*) HTTP/(1\.[01])\r\n"
    rb"((?:" + _TOKEN + rb":[ \t]*(?:" + _VALUE + rb")?[ \t]*\r\n)*)\r\n")
#: Headers whose handling the fast parser leaves to h11.
_SLOW_NAMES = frozenset((b"transfer-encoding", b"upgrade", b"expect"))
_MAX_LENGTH_DIGITS = 18

# -- what h11 lets through but RFC 9112 and gunicorn refuse ---------------------

#: A bare LF line end, obs-fold (a line starting with SP/HTAB) or a control
#: character (CR and HTAB aside) anywhere in a head. The fast parser's regex
#: admits none of these, so only heads parsed by h11 are scanned.
_LAX_HEAD = re.compile(rb"(?<!\r)\n|\n[ \t]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_HEAD_END = re.compile(rb"\n\r?\n")  # how h11 finds the end of a head
#: h11 merges repeated identical Content-Length fields and lists ("7, 7") into one.
_CONTENT_LENGTH_FIELD = re.compile(rb"\ncontent-length[ \t]*:([^\r\n]*)", re.IGNORECASE)
#: RFC 9110 section 6.5.1: fields a chunked trailer must not carry (framing,
#: routing, authentication): gunicorn's list.
_FORBIDDEN_TRAILERS = frozenset((b"host", b"content-length", b"transfer-encoding", b"trailer",
                                 b"authorization", b"te"))


def check_raw_head(head: bytes) -> None:
    """Refuse the lax syntax h11 accepts in a complete raw request head.

    ``head`` starts with the request line and holds at least the whole head.

    Raises:
        HttpRequestError: 400 for a bare LF line end, obsolete line folding, a
            control character, or ``Content-Length`` repeated or in list form
            (a request-smuggling vector: a proxy may read another length).
    """
    end = _HEAD_END.search(head)
    if end is not None:
        head = head[:end.end()]
    bad = _LAX_HEAD.search(head)
    if bad is not None:
        found = bad.group()
        what = ("a bare LF line end" if found == b"\n" else
                "obsolete line folding" if found[:1] == b"\n" else
                f"control character {found!r}")
        raise HttpRequestError(400, f"{what} in the request head")
    lengths = _CONTENT_LENGTH_FIELD.findall(head)
    if len(lengths) > 1 or (lengths and b"," in lengths[0]):
        raise HttpRequestError(400, "Content-Length repeated or in list form")


def parse_fast(data: bytes) -> tuple[RequestHead, int, int] | None:
    """Parse a complete request of the common kind at the start of ``data``.

    Returns:
        ``(head, body_start, body_length)``, or None when the request is not
        one the fast parser fully validates (h11 must then parse it: None
        never means the request is invalid). The body may not all be in
        ``data`` yet.
    """
    match = _FAST_HEAD.match(data)
    if match is None:
        return None
    method, target, version, block = match.groups()
    raw = []
    headers = []
    hosts = 0
    length = -1
    if block:
        # The regex checked every line as token ":" OWS value OWS, so splitting is exact.
        for line in block[:-2].split(b"\r\n"):
            name, _, value = line.partition(b":")
            value = value.strip(b" \t")
            raw.append((name, value))
            name = name.lower()
            headers.append((name, value))
            if name == b"host":
                hosts += 1
            elif name == b"content-length":
                if length >= 0 or not value.isdigit() or len(value) > _MAX_LENGTH_DIGITS:
                    return None
                length = int(value)
            elif name in _SLOW_NAMES or (name == b"connection" and b"upgrade" in value.lower()):
                return None
    if hosts != 1 and (hosts or version == b"1.1"):
        return None
    return RequestHead(method, target, version, headers, raw), match.end(), max(length, 0)


# -- response encoding ----------------------------------------------------------

_date = [0, b""]


def _date_header() -> bytes:
    """``Date: ...\\r\\n``, formatted at most once per second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0] = now
        _date[1] = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
    return _date[1]  # type: ignore[return-value]


_STATUS_LINES: dict[int, bytes] = {}


def status_line(status: int, reason: str | None = None) -> bytes:
    """``HTTP/1.1 <status> <reason>\\r\\n``."""
    if reason is None:
        line = _STATUS_LINES.get(status)
        if line is None:
            if not 100 <= status <= 999:
                raise LocalProtocolError(f"invalid HTTP status {status!r}")
            line = f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode()
            _STATUS_LINES[status] = line
        return line
    if not 100 <= status <= 999 or "\r" in reason or "\n" in reason:
        raise LocalProtocolError(f"invalid HTTP status {status!r} {reason!r}")
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")


_HEADER_LINES: dict[tuple[str, str], tuple[bytes, bytes, bytes]] = {}
_HEADER_LINES_MAX = 4096


def _header_line(name: Any, value: Any) -> tuple[bytes, bytes, bytes]:
    """``(lowercase name, value, b"Name: value\\r\\n")`` of a checked response header.

    Apps send the same headers over and over: str pairs are checked and
    encoded once (a bounded cache).

    Raises:
        LocalProtocolError: see :func:`~geworker.http.check_header`.
    """
    cacheable = type(name) is str and type(value) is str
    if cacheable:
        hit = _HEADER_LINES.get((name, value))
        if hit is not None:
            return hit
    bname, bvalue = check_header(name, value)
    entry = (bname.lower(), bvalue, b"%b: %b\r\n" % (bname, bvalue))
    if cacheable:
        if len(_HEADER_LINES) >= _HEADER_LINES_MAX:
            _HEADER_LINES.clear()
        _HEADER_LINES[(name, value)] = entry
    return entry


def _has_no_body(status: int) -> bool:
    return status < 200 or status in (204, 304)


_FRAMING = frozenset((b"content-length", b"transfer-encoding", b"connection", b"date"))


def encode_closing(response: Response) -> bytes:
    """A complete answer outside any request cycle, after which the connection closes.

    For error answers (see :func:`~geworker.http.responses.error_response`):
    the status line, ``Date``, the response's headers (but framing headers,
    which are set here), ``Content-Length``, ``Connection: close`` and the
    bytes body.

    Raises:
        LocalProtocolError: for an invalid status or header, or a streamed body.
    """
    body = response.body
    if not isinstance(body, bytes):
        raise LocalProtocolError("a closing answer needs a bytes body")
    parts = [status_line(response.status, response.reason), _date_header()]
    for name, value in response.headers:
        lname, _, line = _header_line(name, value)
        if lname not in _FRAMING:
            parts.append(line)
    parts.append(b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
    parts.append(body)
    return b"".join(parts)


class HttpProtocol(Protocol):
    """Sans-IO HTTP/1.1 server side of one connection.

    Args:
        options: the listener's limits (``http_*`` fields of
            :class:`~geworker.settings.Options`).

    Attributes:
        phase: the current :class:`HttpPhase`.
        keep_alive: whether the connection may serve another request after
            the current response (the connection clears it when draining).
        requests: requests received on this connection so far.
        remote_address: set by the connection; copied into each request.
    """

    def __init__(self, options: Options | None = None) -> None:
        options = options or Options()
        super().__init__(options.http_max_body_size)
        self.max_head_size = options.http_max_head_size
        self.max_body_size = options.http_max_body_size
        self.max_requests = options.http_max_requests_per_connection
        self.max_request_line = options.http_max_request_line or self.max_head_size
        self.max_fields = options.http_max_header_fields or self.max_head_size
        self.max_field_size = options.http_max_header_field_size or self.max_head_size
        self._raw_head: list[bytes] = []  # what h11 was fed of the head it is parsing
        # The h11 parser of the current cycle, None while the fast parser has it.
        self._h11: h11.Connection | None = None
        self._buf: list[bytes] = []  # received, not yet parsed (when _h11 is None)
        self._buffered = 0
        self.phase = IDLE
        self.keep_alive = True
        self.requests = 0
        self.remote_address: Any = None
        self.head_only = False  # the current request is HEAD
        self._version = b"1.1"  # of the current request
        self._event: h11.Request | None = None
        self._chunks: list[bytes] = []
        self._size = 0
        self._spill: BinaryIO | None = None
        self._websocket = False
        self._out = b""

    @classmethod
    def for_listener(cls, options: Options) -> HttpProtocol:
        """One protocol instance per connection, with the listener's limits."""
        return cls(options)

    # -- receiving ----------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Any]:
        """Feed bytes; return ``[request]`` once a whole request has arrived, else ``[]``.

        Bytes that arrive while a request is being answered are kept for the
        next cycle (pipelining).

        Raises:
            HttpRequestError: for a malformed or over-limit request.
        """
        conn = self._h11
        if self.phase is WAITING:
            if conn is None:
                self._buf.append(data)  # a list: no quadratic copying of a big pipelined body
                self._buffered += len(data)
                pending = self._buffered
            else:
                conn.receive_data(data)
                pending = len(conn.trailing_data[0])
            if pending > self.max_head_size + self.max_body_size:
                raise HttpRequestError(413, "too much pipelined data")
            return []
        if conn is not None:
            if self.phase is HEAD:
                self._raw_head.append(data)
            conn.receive_data(data)
            return self._parse()
        if self._buf:
            self._buf.append(data)
            data = self._take_buffered()
        return self._begin(data)

    def _take_buffered(self) -> bytes:
        buf = self._buf
        data = buf[0] if len(buf) == 1 else b"".join(buf)
        self._buf = []
        self._buffered = 0
        return data

    def _begin(self, data: bytes) -> list[Any]:
        """Start a request cycle on ``data``: the fast parser if it can, else h11."""
        parsed = parse_fast(data)
        if parsed is not None:
            head, start, length = parsed
            end = start + length
            if end <= len(data):
                self.phase = HEAD  # as h11 would be, should the checks refuse it
                self._check(head.method, head.target, head.http_version, head.headers)
                body: bytes | BinaryIO = data[start:end] if length else b""
                if length > BODY_MEMORY_LIMIT:  # as _add_body would have spilled it
                    spill: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the request
                    spill.write(data[start:end])
                    body = spill
                if end < len(data):
                    rest = data[end:]
                    self._buf = [rest]
                    self._buffered = len(rest)
                self.phase = WAITING
                return [Request(head, body, self.remote_address, self.keep_alive, False)]
        self.phase = HEAD
        conn = self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head_size)
        self._raw_head = [data]
        conn.receive_data(data)
        return self._parse()

    def _parse(self) -> list[Any]:
        conn = self._h11
        assert conn is not None
        try:
            while True:
                event = conn.next_event()
                kind = type(event)
                if kind is h11.Data:
                    self._add_body(event.data)  # type: ignore[union-attr]
                elif kind is h11.Request:
                    self._start(event)  # type: ignore[arg-type]
                elif kind is h11.EndOfMessage:
                    for name, _ in event.headers:  # type: ignore[union-attr]
                        if name in _FORBIDDEN_TRAILERS:
                            raise HttpRequestError(400, f"{name.decode()} in a chunked trailer")
                    return [self._complete()]
                elif event is h11.NEED_DATA:
                    if self.phase is HEAD:
                        self._check_partial_head(conn.trailing_data[0])
                    return []
                else:  # PAUSED or ConnectionClosed: nothing more to parse this cycle
                    return []
        except h11.RemoteProtocolError as exc:
            raise HttpRequestError(exc.error_status_hint, str(exc)) from None

    def _check_partial_head(self, received: bytes) -> None:
        """Refuse a head that is already too long before it is complete."""
        line_limit = self.max_request_line + 2  # and its line end
        if len(received) > line_limit and b"\n" not in received[:line_limit]:
            raise HttpRequestError(414, f"request line exceeds "
                                   f"http_max_request_line={self.max_request_line}")
        if len(received) > self.max_head_size:
            raise HttpRequestError(431, "request head too large")

    def _start(self, event: h11.Request) -> None:
        """Check a new request head (parsed by h11) and note what it asks for."""
        self._event = event
        raw, self._raw_head = self._raw_head, []
        check_raw_head(raw[0] if len(raw) == 1 else b"".join(raw))
        self._check(event.method, event.target, event.http_version, event.headers)
        self.phase = BODY

    def _check(self, method: bytes, target: bytes, version: bytes,
               headers: Iterable[tuple[bytes, bytes]]) -> None:
        """The checks both parsers' requests go through; sets the cycle's state."""
        if version != b"1.1" and version != b"1.0":
            raise HttpRequestError(505, f"HTTP/{version.decode('latin-1')} is not supported")
        self.requests += 1
        length = -1
        chunked = expect = False
        keep_alive = version == b"1.1"
        # RFC 9112 section 3.2: "*" only with OPTIONS, authority-form only with CONNECT.
        if target[:1] != b"/" and method != b"CONNECT" and (
                method != b"OPTIONS" if target == b"*" else b"://" not in target):
            raise HttpRequestError(400, f"request target {target[:60]!r} does not fit "
                                   f"{method.decode('latin-1')}")
        # h11 only bounds incomplete heads; a complete one that came in a single
        # read is measured here (close to its wire size).
        size = len(method) + len(target) + 12
        if size - 2 > self.max_request_line:
            raise HttpRequestError(414, f"request line of {size - 2} bytes exceeds "
                                   f"http_max_request_line={self.max_request_line}")
        if len(headers) > self.max_fields:  # type: ignore[arg-type]
            raise HttpRequestError(431, f"more than http_max_header_fields={self.max_fields} "
                                   "header fields")
        content_types = 0
        field_limit = self.max_field_size
        for name, value in headers:
            field_size = len(name) + len(value) + 4
            if field_size > field_limit:
                raise HttpRequestError(431, f"a header field of {field_size} bytes exceeds "
                                       f"http_max_header_field_size={field_limit}")
            size += field_size
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens and version == b"1.0":
                    keep_alive = True
            elif name == b"expect":
                expect = value.lower() == b"100-continue"
            elif name == b"upgrade":
                self._websocket = b"websocket" in value.lower()
            elif name == b"content-type":
                content_types += 1
        if content_types > 1:  # RFC 9110 section 5.3: a singleton field (h11 refuses two Hosts)
            raise HttpRequestError(400, "Content-Type repeated")
        if size > self.max_head_size:
            raise HttpRequestError(431, f"request head of {size} bytes exceeds "
                            f"http_max_head_size={self.max_head_size}")
        if chunked and version == b"1.0":
            raise HttpRequestError(400, "Transfer-Encoding in an HTTP/1.0 request")
        if chunked and length >= 0:
            raise HttpRequestError(400, "Content-Length together with Transfer-Encoding")
        if length > self.max_body_size:
            raise HttpRequestError(413, f"declared body of {length} bytes exceeds "
                            f"http_max_body_size={self.max_body_size}")
        if self.max_requests and self.requests >= self.max_requests:
            keep_alive = False
        self.keep_alive = keep_alive
        self._version = version
        self.head_only = method == b"HEAD"
        if expect and version == b"1.1" and (chunked or length > 0):
            self._out += b"HTTP/1.1 100 Continue\r\n\r\n"

    def _add_body(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.max_body_size:
            raise HttpRequestError(413, f"body exceeds http_max_body_size={self.max_body_size}")
        if self._spill is not None:
            self._spill.write(data)
            return
        self._chunks.append(data)
        if self._size > BODY_MEMORY_LIMIT:
            spill: BinaryIO = tempfile.TemporaryFile()  # noqa: SIM115 - closed with the request
            spill.writelines(self._chunks)
            self._chunks = []
            self._spill = spill

    def _complete(self) -> Request:
        event = self._event
        assert event is not None
        if self._spill is not None:
            body: bytes | BinaryIO = self._spill
            self._spill = None
        else:
            chunks = self._chunks
            body = bytes(chunks[0]) if len(chunks) == 1 else b"".join(chunks)
            if chunks:
                self._chunks = []
        self._size = 0
        self.phase = WAITING
        return Request(event, body, self.remote_address, self.keep_alive, self._websocket)

    def next_cycle(self) -> list[Any]:
        """Start on the next request once the current response is complete.

        Returns ``[request]`` when bytes already received complete one (pipelining).

        Raises:
            HttpRequestError: for a malformed or over-limit request.
        """
        conn = self._h11
        if conn is None:
            leftover = self._take_buffered() if self._buf else b""
        else:
            leftover = conn.trailing_data[0]
            self._h11 = None
            self._event = None
            self._websocket = False
        if not leftover:
            self.phase = IDLE
            return []
        return self._begin(leftover)

    def take_trailing_data(self) -> bytes:
        """The bytes received after an upgrade request's head (given once)."""
        conn = self._h11
        if conn is None:
            return self._take_buffered() if self._buf else b""
        self._h11 = None
        return conn.trailing_data[0]

    def data_to_send(self) -> bytes:
        """``100 Continue`` when a client waits for it before sending its body."""
        out, self._out = self._out, b""
        return out

    @property
    def has_partial_message(self) -> bool:
        """True while a request head or body is partly received."""
        return self.phase is HEAD or self.phase is BODY

    # -- sending --------------------------------------------------------------

    def connection_header(self) -> bytes:
        """The ``Connection`` header the current response needs (may be empty)."""
        if not self.keep_alive:
            return b"Connection: close\r\n"
        if self._version == b"1.0":
            return b"Connection: keep-alive\r\n"
        return b""

    def simple_response(self, body: bytes, content_type: bytes) -> bytes:
        """The bytes of a 200 answer with a body and a content type (the fast path)."""
        if self.head_only:
            return b"HTTP/1.1 200 OK\r\n%bContent-Type: %b\r\nContent-Length: %d\r\n%b\r\n" % (
                _date_header(), content_type, len(body), self.connection_header())
        # One formatting operation: the cheapest way to build the answer in CPython.
        return b"HTTP/1.1 200 OK\r\n%bContent-Type: %b\r\nContent-Length: %d\r\n%b\r\n%b" % (
            _date_header(), content_type, len(body), self.connection_header(), body)

    def encode_head(self, response: Response, length: int | None,
                    chunk: bool = True) -> tuple[bytes, bool]:
        """The status line and headers of ``response``.

        Args:
            length: the body length, or None when unknown (the body is then
                sent chunked to HTTP/1.1 clients, else the connection closes
                after it).
            chunk: False to end an unknown-length body by closing the
                connection even for HTTP/1.1 (event streams).

        Returns:
            ``(head, chunked)``.

        Raises:
            LocalProtocolError: for an invalid status or header (CR/LF in a value).
        """
        status = response.status
        parts = [status_line(status, response.reason), _date_header()]
        user_length = None
        for name, value in response.headers:
            lname, bvalue, line = _header_line(name, value)
            if lname == b"content-length":
                user_length = bvalue
                continue
            if lname == b"connection":
                if b"close" in bvalue.lower():
                    self.keep_alive = False
                continue
            if lname == b"transfer-encoding" or lname == b"date":
                continue  # framing and date are ours
            parts.append(line)
        chunked = False
        if _has_no_body(status):
            if status == 304 and user_length is not None:
                parts.append(b"Content-Length: " + user_length + b"\r\n")
        elif length is not None:
            parts.append(b"Content-Length: " + str(length).encode() + b"\r\n")
        elif user_length is not None:
            parts.append(b"Content-Length: " + user_length + b"\r\n")
        elif chunk and self._version == b"1.1":
            if not self.head_only:
                parts.append(b"Transfer-Encoding: chunked\r\n")
                chunked = True
        else:
            self.keep_alive = False  # the body ends when the connection closes
        parts.append(self.connection_header())
        parts.append(b"\r\n")
        return b"".join(parts), chunked

    def encode(self, message: Any) -> bytes:
        """The complete bytes answering the current request with ``message``.

        ``message`` is a :class:`~geworker.http.Response` with a bytes body or
        a shortcut (``str``, ``bytes``, ``dict``/``list``). Streamed bodies are
        written by the connection, not encoded here.

        Raises:
            LocalProtocolError: for anything else, or an invalid header.
        """
        kind = type(message)
        if kind is bytes:
            return self.simple_response(message, OCTETS.encode())
        if kind is str:
            return self.simple_response(message.encode(), TEXT.encode())
        if kind is dict or kind is list:
            return self.simple_response(_dumps(message), JSON.encode())
        response = make_response(message)
        body = response.body
        if not isinstance(body, bytes):
            raise LocalProtocolError("a streamed body cannot be encoded at once")
        if _has_no_body(response.status):
            body = b""
        head, _ = self.encode_head(response, len(body))
        return head if self.head_only or not body else head + body

    def error(self, status: int) -> bytes:
        """An error answer for the current request; the connection must close after it."""
        self.keep_alive = False
        return encode_closing(error_response(status))

