"""HTTP responses: what callbacks send on ``http://`` listeners.

A callback answers with ``conn.send(response)``: a :class:`Response`, a
:class:`FileResponse`, an :class:`EventStream`, or a shortcut (``str`` is
``text/plain``, ``bytes`` is ``application/octet-stream``, a ``dict`` or
``list`` is JSON; see :func:`make_response`). Raise :class:`HTTPError` to
answer with an error status.

Every error answer geworker writes, whether a callback raised
:class:`HTTPError`, a request was malformed or a WebSocket handshake refused,
is built by :func:`error_response`; :func:`geworker.http.protocol.encode_closing`
turns it into the bytes of an answer that closes the connection.

Nothing here writes to a socket: the HTTP connection encodes a response with
:class:`~geworker.http.protocol.HttpProtocol`, and an :class:`EventStream`
pushes its events through the :class:`EventSink` it is attached to (the HTTP
connection).
"""

from __future__ import annotations

import email.utils
import json
import mimetypes
import os
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any, Protocol

from ..errors import GeworkerError, LocalProtocolError

if TYPE_CHECKING:
    from .models import Request

__all__ = ["JSON", "OCTETS", "TEXT", "EventSink", "EventStream", "FileResponse", "HTTPError",
           "Response", "check_header", "error_response", "make_response", "reason_phrase"]

_TOKEN = re.compile(rb"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_BAD_VALUE = re.compile(rb"[\x00\r\n]")
_COOKIE_VALUE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")
_REASONS = {s.value: s.phrase for s in HTTPStatus}


def reason_phrase(status: int) -> str:
    """The standard reason phrase of ``status`` (``""`` when unknown)."""
    return _REASONS.get(status, "")


class HTTPError(GeworkerError):
    """Raise in a callback to answer ``status`` (with ``detail`` as a text body).

    The connection stays usable when the status allows it. Also raised by
    :class:`Request` for malformed bodies (invalid JSON or form data: 400).
    """

    def __init__(self, status: int, detail: str = "", headers: Iterable[tuple[str, str]] = ()):
        super().__init__(f"{status} {detail or reason_phrase(status)}")
        self.status = status
        self.detail = detail or reason_phrase(status)
        self.headers = list(headers)

    def response(self) -> Response:
        """The response this error answers with (see :func:`error_response`)."""
        return error_response(self.status, self.detail, self.headers)


# -- responses ----------------------------------------------------------------

TEXT = "text/plain; charset=utf-8"
OCTETS = "application/octet-stream"
JSON = "application/json"


# One encoder for all answers: json.dumps with options builds a new one per call.
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(obj: Any) -> bytes:
    return _JSON_ENCODER.encode(obj).encode()


def check_header(name: str, value: str) -> tuple[bytes, bytes]:
    """Validate one response header and return it encoded.

    Raises:
        LocalProtocolError: for a name that is not an HTTP token, or a value
            containing CR, LF or NUL (header injection).
    """
    bname = name.encode("latin-1") if isinstance(name, str) else bytes(name)
    bvalue = value.encode("latin-1") if isinstance(value, str) else bytes(value)
    if not _TOKEN.fullmatch(bname):
        raise LocalProtocolError(f"invalid response header name {name!r}")
    if _BAD_VALUE.search(bvalue):
        raise LocalProtocolError(f"response header {name!r} contains CR, LF or NUL")
    return bname, bvalue


def _http_date(value: datetime | float | str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.timestamp()
    return email.utils.formatdate(value, usegmt=True)


class Response:
    """An HTTP response.

    Args:
        body: ``bytes``, ``str`` (UTF-8), a ``dict``/``list`` (JSON), or an
            iterable of ``bytes``/``str`` chunks streamed as they come
            (chunked, or with the length given in a ``Content-Length`` header).
        status: the status code.
        headers: ``(name, value)`` pairs or a dict. Values with CR/LF are refused
            when the response is sent.
        content_type: default from the body's type (text, octet-stream, JSON)
            when the body is not empty; ``""`` for none.
        reason: the reason phrase (default: the standard one).
    """

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self,
        body: Any = b"",
        status: int = 200,
        headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
        content_type: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers: list[tuple[str, str]] = list(
            headers.items() if isinstance(headers, dict) else headers or ())
        default = None
        if isinstance(body, str):
            body, default = body.encode(), TEXT
        elif isinstance(body, (bytes, bytearray, memoryview)):
            body, default = bytes(body), OCTETS
        elif isinstance(body, (dict, list)):
            body, default = _dumps(body), JSON
        elif body is None:
            body = b""
        self.body = body
        if content_type is None and body:
            content_type = default
        if content_type and not self.has_header("content-type"):
            self.headers.append(("Content-Type", content_type))

    def has_header(self, name: str) -> bool:
        """True if a header of that name (case-insensitive) is set."""
        name = name.lower()
        return any(k.lower() == name for k, _ in self.headers)

    def get_header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (case-insensitive), or ``default``."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def set_cookie(
        self,
        name: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime | float | str | None = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = None,
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header.

        ``value`` made of characters outside the cookie-octet set is quoted
        with double quotes only when that makes it valid.

        Raises:
            LocalProtocolError: for an invalid name, value or attribute.
        """
        if not _TOKEN.fullmatch(name.encode("latin-1", "replace")):
            raise LocalProtocolError(f"invalid cookie name {name!r}")
        if not _COOKIE_VALUE.fullmatch(value):
            raise LocalProtocolError(
                f"cookie value for {name!r} has characters not allowed in a cookie "
                "(quote or percent-encode it)")
        parts = [f"{name}={value}"]
        if max_age is not None:
            parts.append(f"Max-Age={int(max_age)}")
        if expires is not None:
            parts.append(f"Expires={_http_date(expires)}")
        if path is not None:
            parts.append(f"Path={path}")
        if domain is not None:
            parts.append(f"Domain={domain}")
        if secure:
            parts.append("Secure")
        if httponly:
            parts.append("HttpOnly")
        if samesite is not None:
            if samesite.capitalize() not in ("Strict", "Lax", "None"):
                raise LocalProtocolError(f"samesite must be Strict, Lax or None, not {samesite!r}")
            parts.append(f"SameSite={samesite.capitalize()}")
        if partitioned:
            parts.append("Partitioned")
        cookie = "; ".join(parts)
        if _BAD_VALUE.search(cookie.encode("latin-1", "replace")) or ";" in "".join(
                p for p in (path or "", domain or "")):
            raise LocalProtocolError("cookie attributes must not contain ';', CR or LF")
        self.headers.append(("Set-Cookie", cookie))

    def delete_cookie(self, name: str, *, path: str | None = "/", domain: str | None = None,
                      secure: bool = False, httponly: bool = False,
                      samesite: str | None = None) -> None:
        """Tell the client to drop cookie ``name`` (same path and domain as set)."""
        self.set_cookie(name, "", max_age=0, expires=0, path=path, domain=domain,
                        secure=secure, httponly=httponly, samesite=samesite)

    def __repr__(self) -> str:
        return f"<geworker.http.Response {self.status}>"


def error_response(status: int, detail: str = "", headers: Iterable[tuple[Any, Any]] = (),
                   body: bytes | None = None) -> Response:
    """An error answer: the one way geworker builds one.

    Args:
        status: the status code.
        detail: the text of the body, a line (default: the reason phrase).
        headers: extra ``(name, value)`` pairs, as ``str`` or ``bytes``.
        body: the body as given, instead of ``detail`` (no ``Content-Type``
            is then added: pass one in ``headers``).
    """
    if body is None:
        return Response(f"{detail or reason_phrase(status)}\n", status, headers,
                        content_type=TEXT)
    return Response(body, status, headers, content_type="")


def make_response(message: Any) -> Response:
    """Turn a ``conn.send`` argument into a :class:`Response`.

    Raises:
        LocalProtocolError: for a type that is no response and no shortcut.
    """
    if isinstance(message, Response):
        return message
    if isinstance(message, (str, bytes, bytearray, memoryview, dict, list)):
        return Response(message)
    raise LocalProtocolError(
        f"cannot send a {type(message).__name__} as an HTTP response: use Response, "
        "FileResponse, EventStream, str, bytes, dict or list")


def _etag_matches(header: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 8.8.3.2) against an If-None-Match list."""
    if header.strip() == "*":
        return True
    bare = etag.removeprefix("W/")
    return any(tag.strip().removeprefix("W/") == bare for tag in header.split(","))


_RANGE = re.compile(r"bytes=\s*(\d*)\s*-\s*(\d*)\s*")


class FileResponse(Response):
    """A file sent from disk in chunks, never loaded whole.

    Sets ``Content-Type`` (guessed from the name), ``Last-Modified`` and a
    weak ``ETag``; answers ``If-None-Match``/``If-Modified-Since`` with 304 and
    a single ``Range`` with 206 (416 when unsatisfiable). Multiple ranges are
    answered with the whole file.

    Args:
        path: the file to send.
        status: the status code for a full answer.
        headers: extra headers.
        content_type: default guessed from ``path``.
        filename: when given, a ``Content-Disposition: attachment`` header.
        chunk_size: bytes read and sent at a time.

    Raises:
        HTTPError: 404 when ``path`` is not a readable regular file (raised
            when the response is sent).
    """

    __slots__ = ("chunk_size", "path", "range")

    def __init__(
        self,
        path: str | os.PathLike[str],
        status: int = 200,
        headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
        content_type: str | None = None,
        filename: str | None = None,
        chunk_size: int = 64 * 1024,
    ) -> None:
        self.path = os.fspath(path)
        guessed = content_type or mimetypes.guess_type(self.path)[0] or OCTETS
        if guessed.startswith("text/") and "charset" not in guessed:
            guessed += "; charset=utf-8"
        super().__init__(b"", status, headers, content_type=guessed)
        if filename is not None:
            quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
            self.headers.append(("Content-Disposition", f'attachment; filename="{quoted}"'))
        self.chunk_size = chunk_size
        self.range: tuple[int, int] | None = None

    def prepare(self, request: Request | None) -> tuple[Response | None, IO[bytes] | None, int]:
        """Resolve conditionals and ranges against ``request``.

        Returns ``(response, file, length)``: either a short response to send
        instead (304, 416) and no file, or ``(None, open file positioned at
        the first byte, byte count)`` with status and headers of this object
        set accordingly.
        """
        try:
            f = open(self.path, "rb")  # noqa: SIM115 - closed by the sender
        except OSError:
            raise HTTPError(404) from None
        st = os.fstat(f.fileno())
        if not os.path.isfile(self.path) or st.st_size < 0:
            f.close()
            raise HTTPError(404)
        size = st.st_size
        etag = f'W/"{st.st_mtime_ns:x}-{size:x}"'
        last_modified = email.utils.formatdate(st.st_mtime, usegmt=True)
        validators = [("ETag", etag), ("Last-Modified", last_modified)]
        self.headers.extend(validators)
        self.headers.append(("Accept-Ranges", "bytes"))
        if request is not None and request.method in ("GET", "HEAD"):
            if self._not_modified(request, etag, st.st_mtime):
                f.close()
                return Response(b"", 304, validators), None, 0
            range_header = request._header(b"range")
            if range_header and self._if_range_ok(request, etag, st.st_mtime):
                match = _RANGE.fullmatch(range_header)
                if match and (match.group(1) or match.group(2)):
                    start, end = match.group(1), match.group(2)
                    if start:
                        first = int(start)
                        last = min(int(end), size - 1) if end else size - 1
                    else:
                        first = max(size - int(end), 0)
                        last = size - 1
                    if first > last or first >= size:
                        f.close()
                        return Response(b"", 416, [("Content-Range", f"bytes */{size}")]), \
                            None, 0
                    f.seek(first)
                    self.status = 206
                    self.headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
                    return None, f, last - first + 1
        return None, f, size

    @staticmethod
    def _not_modified(request: Request, etag: str, mtime: float) -> bool:
        inm = request._header(b"if-none-match")
        if inm:
            return _etag_matches(inm, etag)
        ims = request._header(b"if-modified-since")
        if ims:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError, IndexError):
                return False
            return int(mtime) <= since
        return False

    @staticmethod
    def _if_range_ok(request: Request, etag: str, mtime: float) -> bool:
        if_range = request._header(b"if-range")
        if not if_range:
            return True
        if if_range.startswith(('"', "W/")):
            return if_range == etag and not etag.startswith("W/")  # strong match only
        try:
            return int(mtime) <= email.utils.parsedate_to_datetime(if_range).timestamp()
        except (TypeError, ValueError, IndexError):
            return False


class EventSink(Protocol):
    """Where an :class:`EventStream` pushes its events: the HTTP connection it was sent on."""

    @property
    def is_open(self) -> bool:
        """True while bytes can still be sent."""

    def send_raw(self, data: bytes) -> bool:
        """Queue ``data`` for sending as it is; False when it was not queued."""

    def close(self) -> None:
        """Close once what was queued is sent."""


class EventStream(Response):
    """A Server-Sent Events response that stays open.

    Send it once with ``conn.send(stream)``; then push events from any
    greenlet with :meth:`send` until :meth:`close` or the client goes away.
    The connection is closed when the stream ends (the response has no
    length), so use a dedicated connection, as browsers' ``EventSource`` does.

    Example::

        @server.on_message
        def handle(conn, request):
            stream = EventStream()
            conn.send(stream)
            subscribers.add(stream)   # another greenlet calls stream.send(...)
    """

    __slots__ = ("_pending", "_sink")

    def __init__(self, headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
                 retry: int | None = None) -> None:
        super().__init__(b"", 200, headers, content_type="text/event-stream; charset=utf-8")
        if not self.has_header("cache-control"):
            self.headers.append(("Cache-Control", "no-cache"))
        self._sink: EventSink | None = None
        self._pending: list[bytes] = [f"retry: {int(retry)}\n\n".encode()] if retry else []

    @staticmethod
    def encode_event(data: str = "", event: str | None = None, id: str | None = None,
                     retry: int | None = None) -> bytes:
        """The wire form of one event.

        Raises:
            LocalProtocolError: when ``event`` or ``id`` contains a line break.
        """
        lines = []
        for name, value in (("event", event), ("id", id)):
            if value is not None:
                if "\n" in value or "\r" in value or (name == "id" and "\0" in value):
                    raise LocalProtocolError(f"SSE {name} must be a single line")
                lines.append(f"{name}: {value}")
        if retry is not None:
            lines.append(f"retry: {int(retry)}")
        lines.extend(f"data: {line}" for line in data.replace("\r\n", "\n").replace(
            "\r", "\n").split("\n"))
        return ("\n".join(lines) + "\n\n").encode()

    def send(self, data: str = "", event: str | None = None, id: str | None = None,
             retry: int | None = None) -> bool:
        """Push one event; safe from any greenlet, never blocks.

        Returns False when the stream is closed or the connection's send queue
        is full. Events sent before the stream itself was sent are queued.
        """
        return self._push(self.encode_event(data, event, id, retry))

    def comment(self, text: str = "") -> bool:
        """Send a comment line (keeps proxies from timing the stream out)."""
        return self._push("".join(f": {line}\n" for line in text.split("\n")).encode() + b"\n")

    def _push(self, frame: bytes) -> bool:
        sink = self._sink
        if sink is None:
            self._pending.append(frame)
            return True
        return bool(sink.send_raw(frame)) and sink.is_open

    def attach(self, sink: EventSink) -> bytes:
        """Bind the stream to where it is sent; returns the events queued so far."""
        self._sink = sink
        pending, self._pending = b"".join(self._pending), []
        return pending

    @property
    def closed(self) -> bool:
        """True once the stream or its connection is closed."""
        sink = self._sink
        return sink is not None and not sink.is_open

    def close(self) -> None:
        """End the stream (the connection closes once queued events are sent)."""
        if self._sink is not None:
            self._sink.close()
