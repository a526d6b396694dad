"""HTTP/1.1 for ``http://`` and ``https://`` listeners.

The sans-IO half: :mod:`~geworker.http.models` (:class:`Request`, headers),
:mod:`~geworker.http.responses` (:class:`Response`, :class:`FileResponse`,
:class:`EventStream`, :class:`HTTPError`, the one error-answer builder),
:mod:`~geworker.http.protocol` (the parser and encoder),
:mod:`~geworker.http.multipart`, :mod:`~geworker.http.static`,
:mod:`~geworker.http.environ` (the CGI environ) and
:mod:`~geworker.http.accesslog`. The runtime half:
:mod:`~geworker.http.connection` (the transport loop's HTTP connection) and
:mod:`~geworker.http.wsgi`.

The names users write (``geworker.http.Response`` and the rest below) are
loaded on first use, so importing this package costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import Headers, MultiDict, Request
    from .responses import EventStream, FileResponse, HTTPError, Response
    from .static import StaticFiles

__all__ = ["EventStream", "FileResponse", "HTTPError", "Headers", "MultiDict", "Request",
           "Response", "StaticFiles"]

_HOMES = {
    "Headers": "models", "MultiDict": "models", "Request": "models",
    "EventStream": "responses", "FileResponse": "responses", "HTTPError": "responses",
    "Response": "responses", "StaticFiles": "static",
}


def __getattr__(name: str) -> Any:
    """Load a public HTTP name from its module on first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'geworker.http' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f"{__name__}.{home}"), name)
