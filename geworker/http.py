"""HTTP requests and responses as ``http://`` listeners hand them to callbacks.

``on_message(conn, request)`` receives a :class:`Request`; the callback
answers with ``conn.send(response)``, where the response is a
:class:`Response`, a :class:`FileResponse`, an :class:`EventStream`, or a
shortcut: ``str`` (``text/plain``), ``bytes`` (``application/octet-stream``),
or a ``dict``/``list`` (JSON).

Everything the request offers beyond the raw head is computed on first
access (query, cookies, form, JSON, uploads), so a handler that only looks at
the path pays for nothing else. Raise :class:`HTTPError` in a callback to
answer with an error status.

This module does no I/O of its own except reading files from disk and
spilling large bodies and uploads to temporary files.
"""

from __future__ import annotations

import email.utils
import io
import json
import mimetypes
import os
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from functools import cached_property
from http import HTTPStatus
from typing import IO, TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qsl, unquote

from .errors import GeworkerError, LocalProtocolError

if TYPE_CHECKING:
    import h11

    from .multipart import UploadedFile

__all__ = [
    "EventStream",
    "FileResponse",
    "HTTPError",
    "Headers",
    "MultiDict",
    "Request",
    "RequestHead",
    "Response",
    "make_response",
    "reason_phrase",
]

#: Request bodies up to this size stay in memory; larger ones go to a temporary file.
BODY_MEMORY_LIMIT = 1024 * 1024

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
        """The response this error answers with."""
        return Response(f"{self.detail}\n", self.status, self.headers)


# -- headers and multi-valued mappings ---------------------------------------


class MultiDict:
    """A read-only mapping that keeps every value of a repeated key, in order.

    ``d[key]`` and ``d.get(key)`` give the first value; :meth:`get_all`
    gives them all.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Iterable[tuple[str, Any]] = ()) -> None:
        self._items = list(items)

    def _key(self, key: str) -> str:
        return key

    def get(self, key: str, default: Any = None) -> Any:
        """The first value of ``key``, or ``default``."""
        key = self._key(key)
        for k, v in self._items:
            if k == key:
                return v
        return default

    def get_all(self, key: str) -> list[Any]:
        """Every value of ``key``, in order (empty when absent)."""
        key = self._key(key)
        return [v for k, v in self._items if k == key]

    def __getitem__(self, key: str) -> Any:
        key = self._key(key)
        for k, v in self._items:
            if k == key:
                return v
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(k == self._key(key) for k, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        seen = set()
        for k, _ in self._items:
            if k not in seen:
                seen.add(k)
                yield k

    def __len__(self) -> int:
        return len({k for k, _ in self._items})

    def keys(self) -> list[str]:
        """Distinct keys, in first-seen order."""
        return list(self)

    def items(self) -> list[tuple[str, Any]]:
        """Every (key, value) pair, repeated keys included, in order."""
        return list(self._items)

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the first value of each key."""
        out: dict[str, Any] = {}
        for k, v in self._items:
            out.setdefault(k, v)
        return out

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDict):
            return self._items == other._items
        if isinstance(other, dict):
            return self.to_dict() == other
        return NotImplemented

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class Headers(MultiDict):
    """Request headers: case-insensitive names (stored lowercase), repeats kept."""

    __slots__ = ()

    def _key(self, key: str) -> str:
        return key.lower()


# -- requests -----------------------------------------------------------------


class RequestHead:
    """A parsed request head, as the fast parser produces it.

    It has the attributes of ``h11.Request`` that geworker reads; header
    names in :attr:`headers` are lowercase, as h11 gives them.

    Attributes:
        method: e.g. ``b"GET"``.
        target: the raw request target.
        http_version: ``b"1.1"`` or ``b"1.0"``.
        headers: ``(lowercase name, value)`` pairs, in order.
        raw_headers: the same pairs with names as sent.
    """

    __slots__ = ("headers", "http_version", "method", "raw_headers", "target")

    def __init__(self, method: bytes, target: bytes, http_version: bytes,
                 headers: list[tuple[bytes, bytes]],
                 raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.raw_headers = raw_headers


class Request:
    """One HTTP request, complete with its body.

    Attributes:
        head: the parsed head, an ``h11.Request`` or a :class:`RequestHead`
            (``method``, ``target``, ``http_version``, ``headers`` as bytes).
        remote_address: the peer's address.
        keep_alive: whether the client allows the connection to be reused.
        is_websocket_upgrade: True when the request asks to switch to WebSocket.
    """

    def __init__(
        self,
        event: h11.Request | RequestHead,
        body: bytes | BinaryIO = b"",
        remote_address: Any = None,
        keep_alive: bool = True,
        is_websocket_upgrade: bool = False,
    ) -> None:
        self.head = event
        self._body = body
        self.remote_address = remote_address
        self.keep_alive = keep_alive
        self.is_websocket_upgrade = is_websocket_upgrade

    @cached_property
    def h11_request(self) -> h11.Request:
        """The head as an ``h11.Request`` event (built on first use for fast-parsed heads).

        With the ``fast`` extra it comes from ``h11_mypyc``, the engine in use.
        """
        head = self.head
        if isinstance(head, RequestHead):
            from .protocols.http import h11

            return h11.Request(method=head.method, target=head.target,
                               headers=head.raw_headers, http_version=head.http_version)
        return head

    # The head, decoded on demand.

    @cached_property
    def method(self) -> str:
        """The request method, e.g. ``"GET"``."""
        return self.head.method.decode("ascii")

    @cached_property
    def target(self) -> str:
        """The raw request target as sent, e.g. ``"/a%20b?x=1"``."""
        return self.head.target.decode("latin-1")

    @cached_property
    def raw_path(self) -> str:
        """The path part of the target, still percent-encoded.

        For an absolute-form target (``http://host/path``) this is ``/path``.
        """
        target = self.target
        if target[:1] != "/" and "://" in target:
            rest = target.partition("://")[2].partition("?")[0]
            slash = rest.find("/")
            return rest[slash:] if slash >= 0 else "/"
        return target.partition("?")[0]

    @cached_property
    def path(self) -> str:
        """The percent-decoded path (UTF-8), e.g. ``"/a b"``."""
        return unquote(self.raw_path, errors="surrogateescape")

    @cached_property
    def query_string(self) -> str:
        """The raw query string (without ``?``)."""
        return self.target.partition("?")[2]

    @cached_property
    def query(self) -> MultiDict:
        """Query parameters; repeated names keep every value."""
        return MultiDict(parse_qsl(self.query_string, keep_blank_values=True))

    @cached_property
    def http_version(self) -> str:
        """``"1.1"`` or ``"1.0"``."""
        return self.head.http_version.decode("ascii")

    @cached_property
    def headers(self) -> Headers:
        """Request headers (case-insensitive, repeats kept, values as str)."""
        return Headers([(k.decode("latin-1"), v.decode("latin-1"))
                        for k, v in self.head.headers])

    @cached_property
    def host(self) -> str:
        """The ``Host`` header (``""`` when absent)."""
        return self._header(b"host")

    @cached_property
    def content_type(self) -> str:
        """The media type of the body, lowercase, without parameters."""
        return self._header(b"content-type").partition(";")[0].strip().lower()

    @cached_property
    def cookies(self) -> dict[str, str]:
        """Cookies sent by the client (the first of repeated names wins)."""
        jar: dict[str, str] = {}
        for header in self.headers.get_all("cookie"):
            for part in header.split(";"):
                name, sep, value = part.strip().partition("=")
                if not sep or not name:
                    continue
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                jar.setdefault(name.strip(), value)
        return jar

    def _header(self, name: bytes) -> str:
        for k, v in self.head.headers:
            if k == name:
                return v.decode("latin-1")
        return ""

    # The body.

    @property
    def body(self) -> bytes:
        """The whole body as bytes (read from its temporary file if large)."""
        body = self._body
        if isinstance(body, bytes):
            return body
        body.seek(0)
        return body.read()

    @property
    def stream(self) -> BinaryIO:
        """The body as a binary file positioned at its start."""
        body = self._body
        if isinstance(body, bytes):
            return io.BytesIO(body)
        body.seek(0)
        return body

    @cached_property
    def charset(self) -> str:
        """The ``charset`` parameter of ``Content-Type`` (default ``utf-8``)."""
        match = re.search(r"charset=\"?([\w.:-]+)", self._header(b"content-type"), re.I)
        return match.group(1) if match else "utf-8"

    @cached_property
    def text(self) -> str:
        """The body decoded with its charset (undecodable bytes replaced)."""
        try:
            return self.body.decode(self.charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            HTTPError: 400 when the body is not valid JSON.
        """
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise HTTPError(400, f"invalid JSON body: {exc}") from None

    @cached_property
    def form(self) -> MultiDict:
        """Form fields of a urlencoded or multipart body (empty for others).

        Raises:
            HTTPError: 400 for a malformed multipart body.
        """
        self._parse_form()
        return self.form

    @cached_property
    def files(self) -> MultiDict:
        """Uploaded files of a multipart body, as :class:`~geworker.multipart.UploadedFile`.

        Each file is streamed to a temporary file while the body is parsed.
        """
        self._parse_form()
        return self.files

    def _parse_form(self) -> None:
        fields: list[tuple[str, Any]] = []
        files: list[tuple[str, UploadedFile]] = []
        ctype = self.content_type
        if ctype == "application/x-www-form-urlencoded":
            try:
                fields = parse_qsl(self.body.decode("latin-1"), keep_blank_values=True,
                                   encoding=self.charset, max_num_fields=10000)
            except (ValueError, LookupError) as exc:
                raise HTTPError(400, f"invalid form body: {exc}") from None
        elif ctype == "multipart/form-data":
            from .multipart import parse_multipart

            fields, files = parse_multipart(self.stream, self._header(b"content-type"))
        self.__dict__["form"] = MultiDict(fields)
        self.__dict__["files"] = MultiDict(files)

    def close(self) -> None:
        """Release the body's temporary file and uploads (done after the response)."""
        if not isinstance(self._body, bytes):
            self._body.close()
        for _, upload in self.__dict__.get("files", MultiDict()).items():
            upload.close()

    def __repr__(self) -> str:
        return f"<geworker.http.Request {self.method} {self.target}>"


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

    __slots__ = ("_conn", "_pending")

    def __init__(self, headers: Iterable[tuple[str, str]] | dict[str, str] | None = None,
                 retry: int | None = None) -> None:
        super().__init__(b"", 200, headers, content_type="text/event-stream; charset=utf-8")
        if not self.has_header("cache-control"):
            self.headers.append(("Cache-Control", "no-cache"))
        self._conn: Any = None
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
        frame = self.encode_event(data, event, id, retry)
        if self._conn is None:
            self._pending.append(frame)
            return True
        return bool(self._conn.send_raw(frame)) and not self.closed

    def comment(self, text: str = "") -> bool:
        """Send a comment line (keeps proxies from timing the stream out)."""
        frame = "".join(f": {line}\n" for line in text.split("\n")).encode() + b"\n"
        if self._conn is None:
            self._pending.append(frame)
            return True
        return bool(self._conn.send_raw(frame)) and not self.closed

    def attach(self, conn: Any) -> bytes:
        """Bind the stream to its connection; returns the events queued so far."""
        self._conn = conn
        pending, self._pending = b"".join(self._pending), []
        return pending

    @property
    def closed(self) -> bool:
        """True once the stream or its connection is closed."""
        conn = self._conn
        return conn is not None and conn.state.name != "OPEN"

    def close(self) -> None:
        """End the stream (the connection closes once queued events are sent)."""
        if self._conn is not None:
            self._conn.close()
