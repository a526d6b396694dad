"""The CGI-style environ of an HTTP request: one builder for WSGI and the access log.

PEP 3333 gives a WSGI application the request as CGI variables
(``REQUEST_METHOD``, ``PATH_INFO``, ``HTTP_*``...); gunicorn's access log
formats its atoms from the same variables. :func:`cgi_environ` builds them
once, the same way for both: :func:`geworker.http.wsgi.build_environ` adds the
``wsgi.*`` keys to it, and :mod:`geworker.http.accesslog` hands it to
gunicorn for requests no WSGI application answered.

As in gunicorn, request headers whose names contain ``_`` are left out (they
could pass for their ``-`` twins once mapped to ``HTTP_*``). No I/O, no gevent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes, urlsplit

from .models import Request

__all__ = ["cgi_environ"]


def cgi_environ(request: Request, listener: Any, remote_address: Any) -> dict[str, Any]:
    """The CGI variables of ``request``, received on ``listener`` from ``remote_address``.

    Args:
        request: the request.
        listener: its listener (``host``, ``port``, ``tls`` are read).
        remote_address: the peer's address: ``(host, port)``, else unknown.
    """
    target = request.target
    if target.startswith(("http://", "https://")):  # absolute form
        parts = urlsplit(target)
        path, query = parts.path or "/", parts.query
    else:
        path, _, query = target.partition("?")
    remote = remote_address
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": target,
        "REQUEST_URI": target,
        "SERVER_NAME": listener.host or "localhost",
        "SERVER_PORT": str(listener.port or ""),
        "SERVER_PROTOCOL": f"HTTP/{request.http_version}",
        "REMOTE_ADDR": remote[0] if isinstance(remote, tuple) else "",
        "REMOTE_PORT": str(remote[1]) if isinstance(remote, tuple) else "",
    }
    for name, value in request.head.headers:
        if b"_" in name:
            continue
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = text
            continue
        key = "HTTP_" + key
        if key in environ:
            text = environ[key] + ("; " if key == "HTTP_COOKIE" else ",") + text
        environ[key] = text
    return environ
