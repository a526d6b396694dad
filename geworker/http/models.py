"""HTTP requests as ``http://`` listeners hand them to callbacks.

``on_message(conn, request)`` receives a :class:`Request`; the answer is one
of :mod:`geworker.http.responses`.

Everything the request offers beyond the raw head is computed on first
access (query, cookies, form, JSON, uploads), so a handler that only looks at
the path pays for nothing else.

This module does no I/O of its own except spilling large bodies and uploads
to temporary files.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qsl, unquote

from .responses import HTTPError

if TYPE_CHECKING:
    import h11

    from .multipart import UploadedFile

__all__ = ["Headers", "MultiDict", "Request", "RequestHead"]

#: Request bodies up to this size stay in memory; larger ones go to a temporary file.
BODY_MEMORY_LIMIT = 1024 * 1024


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
            from ._h11 import h11

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
        """Uploaded files of a multipart body, as :class:`~geworker.http.multipart.UploadedFile`.

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

