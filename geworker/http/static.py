"""Serve a directory of static files over ``http://``, refusing path traversal.

Example::

    static = StaticFiles("/srv/www", prefix="/static/")

    @server.on_message
    def handle(conn, request):
        if request.path.startswith("/static/"):
            conn.send(static.response(request))
        else:
            ...

A request is answered 404 whenever its path does not name a regular file
inside the root: ``..`` or ``.`` segments, percent-encoded slashes,
backslashes or NUL bytes, invalid UTF-8, and symbolic links (or any path)
that resolve outside the root are all refused the same way, so the answer
never tells what exists outside. Files are sent by
:class:`~geworker.http.FileResponse` (ETag, Last-Modified, 304, Range).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote

from .models import Request
from .responses import FileResponse, HTTPError, Response

__all__ = ["StaticFiles"]

_REFUSED_ENCODINGS = ("%2f", "%5c", "%00")


class StaticFiles:
    """A handler for the files under ``root``.

    Args:
        root: the directory served.
        prefix: the URL path prefix mapped to ``root`` (``"/"`` for all).
        index: the file served for a directory (None: directories are 404).
    """

    def __init__(self, root: str | os.PathLike[str], prefix: str = "/",
                 index: str | None = "index.html") -> None:
        self.root = os.path.realpath(os.fspath(root))
        if not os.path.isdir(self.root):
            raise ValueError(f"static root {self.root!r} is not a directory")
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        self.index = index

    def resolve(self, raw_path: str) -> str | None:
        """The real file path for a percent-encoded URL path, or None when refused."""
        if raw_path + "/" == self.prefix:
            raw_path = self.prefix
        if not raw_path.startswith(self.prefix):
            return None
        rest = raw_path[len(self.prefix):]
        lowered = rest.lower()
        if any(bad in lowered for bad in _REFUSED_ENCODINGS):
            return None
        try:
            decoded = unquote(rest, errors="strict")
        except UnicodeDecodeError:
            return None
        if "\\" in decoded or "\x00" in decoded:
            return None
        segments = decoded.split("/")
        if any(seg in (".", "..") for seg in segments):
            return None
        real = self._inside(os.path.join(self.root, *[seg for seg in segments if seg]))
        if real is not None and os.path.isdir(real):
            real = None if self.index is None else self._inside(os.path.join(real, self.index))
        return real if real is not None and os.path.isfile(real) else None

    def _inside(self, path: str) -> str | None:
        # Symbolic links are followed only while they stay inside the root.
        real = os.path.realpath(path)
        if real != self.root and not real.startswith(self.root + os.sep):
            return None
        return real

    def response(self, request: Request) -> Response:
        """The answer for ``request``: the file, 304/206/416, 404, or 405 for other methods."""
        if request.method not in ("GET", "HEAD"):
            return Response("405 Method Not Allowed\n", 405, {"Allow": "GET, HEAD"})
        path = self.resolve(request.raw_path)
        if path is None:
            return HTTPError(404).response()
        return FileResponse(path)

    def __call__(self, conn: Any, request: Request) -> None:
        """Use the handler directly as ``on_message``."""
        conn.send(self.response(request))
