"""A plain WSGI application under ``gunicorn -k geworker.Worker``.

The worker wraps it into a :class:`~geworker.Server` whose ``http://``
(or, with ``--certfile``/``--keyfile``, ``https://``) listeners are gunicorn's
own ``--bind`` addresses: a drop-in for gunicorn's gevent worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..http.protocol import HttpProtocol
from ..http.wsgi import WSGIApp, WSGIHandler
from ..listener import Listener
from ..server import Server

__all__ = ["server_for_wsgi_app"]


def server_for_wsgi_app(app: WSGIApp, addresses: Sequence[Any], cfg: Any = None) -> Server:
    """A :class:`~geworker.Server` serving ``app`` on gunicorn's bound addresses.

    Args:
        app: the WSGI application.
        addresses: gunicorn's parsed binds (``(host, port)`` or a unix path).
        cfg: gunicorn's config; ``keepalive`` sets ``http_keepalive_timeout``
            (0 disables keep-alive), ``limit_request_line``/``_fields``/``_field_size``
            the HTTP head limits, ``workers`` the ``wsgi.multiprocess`` flag,
            and ``certfile``/``keyfile`` make the TCP listeners ``https://``.
    """
    options: dict[str, Any] = {}
    multiprocess = True
    # gunicorn's --certfile/--keyfile make its binds TLS, as with its own workers.
    scheme = "https" if cfg is not None and cfg.certfile and cfg.keyfile else "http"
    if cfg is not None:
        multiprocess = cfg.workers > 1
        # gunicorn's request limits, with its meaning of 0 (and of <= 0 for the field count).
        options["http_max_request_line"] = max(cfg.limit_request_line, 0)
        options["http_max_header_fields"] = max(cfg.limit_request_fields, 0)
        options["http_max_header_field_size"] = max(cfg.limit_request_field_size, 0)
        if cfg.keepalive and cfg.keepalive > 0:
            options["http_keepalive_timeout"] = float(cfg.keepalive)
        else:
            options["http_max_requests_per_connection"] = 1
    server = Server(name=getattr(app, "__name__", None) or type(app).__name__, **options)
    for address in addresses:
        if isinstance(address, tuple):
            host = f"[{address[0]}]" if ":" in address[0] else address[0]
            server.listen(f"{scheme}://{host}:{address[1]}")
        else:
            path = address.decode() if isinstance(address, bytes) else str(address)
            server.listeners.append(Listener(f"http+unix://{path}", HttpProtocol, "unix",
                                             path=path, options=server.options))
    server.http_handler = WSGIHandler(app, multiprocess)
    return server
