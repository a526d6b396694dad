"""Run WSGI applications over geworker's HTTP/1.1 (h11) in greenlets.

Two ways in:

* ``gunicorn -k geworker.Worker module:wsgi_app`` with a plain WSGI
  application (Flask, Django...): the worker wraps it with
  :func:`geworker.worker.wsgi_app.server_for_wsgi_app` into a :class:`~geworker.Server` listening on
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
from collections.abc import Callable, Iterable
from itertools import chain
from typing import Any

from ..errors import ConfigurationError, LocalProtocolError
from .environ import cgi_environ
from .models import Request
from .responses import Response

__all__ = ["WSGIApp", "WSGIHandler", "build_environ"]

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
