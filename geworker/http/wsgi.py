"""Run WSGI applications over geworker's HTTP/1.1 (h11) in greenlets.

Two ways in:

* ``gunicorn -k geworker.Worker module:wsgi_app`` with a plain WSGI
  application (Flask, Django...): the worker wraps it with
  :func:`server_for_wsgi_app` into a :class:`~geworker.Server` listening on
  gunicorn's ``--bind`` addresses, a drop-in for gunicorn's gevent worker.
* ``server.mount_wsgi(app)`` on a geworker server: the application answers
  the HTTP requests of the server's ``http://`` listeners, while WebSocket
  upgrades on the same port go to the WebSocket callbacks.

The CGI variables of the environ are built by :mod:`geworker.http.environ`;
as in gunicorn, request headers whose names contain ``_`` are left out (they
could pass for their ``-`` twins once mapped to ``HTTP_*``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, LocalProtocolError
from ..listener import Listener
from .environ import cgi_environ
from .models import Request
from .protocol import HttpProtocol
from .responses import Response

if TYPE_CHECKING:
    from ..server import Server

__all__ = ["WSGIHandler", "build_environ", "server_for_wsgi_app"]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def build_environ(conn: Any, request: Request, multiprocess: bool = True) -> dict[str, Any]:
    """The PEP 3333 environ of ``request`` received on ``conn``.

    The CGI variables come from :func:`~geworker.http.environ.cgi_environ`
    (the access log uses the same); the ``wsgi.*`` keys are added here.
    """
    environ = cgi_environ(request, conn.listener, conn.remote_address)
    environ.update({
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "https" if getattr(conn.listener, "tls", False) else "http",
        "wsgi.input": request.stream,
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "geworker.connection": conn,
        "geworker.request": request,
    })
    return environ


class WSGIHandler:
    """An ``on_message``-style callable that answers HTTP requests with a WSGI app.

    Args:
        app: the WSGI application.
        multiprocess: the ``wsgi.multiprocess`` flag (more than one worker).
    """

    def __init__(self, app: WSGIApp, multiprocess: bool = True) -> None:
        if not callable(app):
            raise ConfigurationError(f"{app!r} is not a WSGI application (not callable)")
        self.app = app
        self.multiprocess = multiprocess

    def __call__(self, conn: Any, request: Request) -> None:
        """Run the application for ``request`` and send its response on ``conn``."""
        environ = build_environ(conn, request, self.multiprocess)
        request.wsgi_environ = environ  # type: ignore[attr-defined]  # reused by the access log
        state: list[Any] = [None, None]  # status, headers
        written: list[bytes] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            if exc_info is not None:
                try:
                    if conn._started:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state[0] is not None:
                raise LocalProtocolError("start_response called twice without exc_info")
            state[0], state[1] = status, headers
            return written.append

        result = self.app(environ, start_response)
        try:
            body: Any
            if isinstance(result, (list, tuple)):
                body = b"".join(result)
            else:
                iterator = iter(result)
                first = b""
                if state[0] is None:  # start_response may be called on the first iteration
                    first = next(iterator, b"")
                body = chain((first,), iterator)
            if state[0] is None:
                raise LocalProtocolError("the WSGI application did not call start_response")
            if written:
                body = b"".join(written) + body if isinstance(body, bytes) \
                    else chain(written, body)
            status_text = str(state[0])
            try:
                status = int(status_text[:3])
            except ValueError:
                raise LocalProtocolError(f"invalid WSGI status {status_text!r}") from None
            reason = status_text[4:] or None
            conn.send(Response(body, status, state[1], content_type="", reason=reason))
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def server_for_wsgi_app(app: WSGIApp, addresses: Sequence[Any], cfg: Any = None) -> Server:
    """A :class:`~geworker.Server` serving ``app`` on gunicorn's bound addresses.

    Args:
        app: the WSGI application.
        addresses: gunicorn's parsed binds (``(host, port)`` or a unix path).
        cfg: gunicorn's config; ``keepalive`` sets ``http_keepalive_timeout``
            (0 disables keep-alive), ``workers`` the ``wsgi.multiprocess`` flag,
            and ``certfile``/``keyfile`` make the TCP listeners ``https://``.
    """
    from ..server import Server

    options: dict[str, Any] = {}
    multiprocess = True
    # gunicorn's --certfile/--keyfile make its binds TLS, as with its own workers.
    scheme = "https" if cfg is not None and cfg.certfile and cfg.keyfile else "http"
    if cfg is not None:
        multiprocess = cfg.workers > 1
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
