"""The object users declare: listeners by URL and plain synchronous callbacks."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigurationError
from .listener import Listener
from .messaging.backends import check_url
from .protocols import Protocol
from .settings import Options
from .transport.runtime import runtime_of

if TYPE_CHECKING:
    from .transport.connection import Connection

__all__ = ["CALLBACK_NAMES", "App", "Server", "check_callback"]

F = TypeVar("F", bound=Callable[..., Any])

#: Servers one App may hold.
MAX_APP_SERVERS = 256

#: Every callback a server may define, with the arguments it receives.
CALLBACK_NAMES = {
    "on_connect": "(conn) after a stream connection is accepted",
    "on_message": "(conn, message) for each complete message, in order per connection",
    "on_close": "(conn) once per stream connection, whoever closed it",
    "on_error": "(conn, exc) when a callback raised or a send was dropped",
    "on_buffer_full": "(conn) when the send queue reaches max_send_buffer_size",
    "on_buffer_drain": "(conn) when a full send queue has been written out",
    "on_worker_start": "(worker) in each worker, before it accepts connections",
    "on_worker_stop": "(worker) in each worker when it stops accepting",
    "on_worker_reload": "(worker) in each old worker when gunicorn reloads (HUP)",
    "on_websocket_connect": "(conn, request) with a WebSocket opening handshake, before it "
                            "completes: request.accept(...) or request.reject(status)",
    "on_websocket_message": "(conn, message) for WebSocket messages of upgraded http:// "
                            "connections (default: on_message)",
}


def check_callback(name: str, func: Any) -> None:
    """Refuse a callback that cannot take the arguments geworker passes it.

    Raises:
        ConfigurationError: naming the callback, where it is defined and the
            signature geworker calls it with.
    """
    expected = CALLBACK_NAMES[name].partition(")")[0] + ")"
    if not callable(func):
        raise ConfigurationError(f"{name} must be a function {expected}, not {func!r}")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return  # a builtin or an extension type: nothing to check
    arguments = expected.strip("()").split(", ")
    try:
        signature.bind(*arguments)
    except TypeError:
        raise ConfigurationError(
            f"{name} callback {getattr(func, '__qualname__', func)}{signature} at {_where(func)} "
            f"cannot be called as {name}{expected}") from None


def _where(func: Any) -> str:
    code = getattr(inspect.unwrap(func), "__code__", None)
    if code is None:
        return "defined elsewhere"
    return f"{code.co_filename}:{code.co_firstlineno}"


class _Callback:
    """A callback slot: ``@server.on_message`` registers, ``server.on_message = f`` too."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.__doc__ = f"Register the ``{name}`` callback, called {CALLBACK_NAMES[name]}."

    def __get__(self, server: Server | None, owner: type) -> Any:
        if server is None:
            return self

        def register(func: F) -> F:
            check_callback(self.name, func)
            server.callbacks[self.name] = func
            return func

        register.__doc__ = self.__doc__
        return register

    def __set__(self, server: Server, func: Callable[..., Any] | None) -> None:
        if func is None:
            server.callbacks.pop(self.name, None)
        else:
            check_callback(self.name, func)
            server.callbacks[self.name] = func


class Server:
    """A geworker server: listeners declared by URL and the callbacks that serve them.

    Run it with ``gunicorn -k geworker.Worker module:server``. Every worker
    process serves every listener; each connection runs in its own greenlet,
    so callbacks may block (sleep, patched socket or database I/O) without
    stalling the others.

    Args:
        *urls: listener URLs (see :class:`~geworker.listener.Listener`).
        name: shown in logs and ``status``.
        messaging: the messaging backend (see :mod:`geworker.messaging`):
            ``"local"`` (the default) between the workers of this instance,
            or a Redis URL to reach every instance; ``$GEWORKER_MESSAGING``
            sets it when the app does not.
        **options: default limits for every listener (see
            :class:`~geworker.settings.Options`).

    Example::

        server = Server("text://0.0.0.0:2345", name="echo")

        @server.on_message
        def echo(conn, message):
            conn.send(message)
    """

    on_connect = _Callback()
    on_message = _Callback()
    on_close = _Callback()
    on_error = _Callback()
    on_buffer_full = _Callback()
    on_buffer_drain = _Callback()
    on_worker_start = _Callback()
    on_worker_stop = _Callback()
    on_worker_reload = _Callback()
    on_websocket_connect = _Callback()
    on_websocket_message = _Callback()

    def __init__(self, *urls: str, name: str = "geworker", messaging: str | None = None,
                 **options: Any) -> None:
        self.name = name
        self.messaging = None if messaging is None else check_url(messaging)
        self.options = Options().replace(**options)
        self.listeners: list[Listener] = []
        self.callbacks: dict[str, Callable[..., Any]] = {}
        #: Answers HTTP requests instead of ``on_message`` (see :meth:`mount_wsgi`).
        self.http_handler: Callable[..., Any] | None = None
        for url in urls:
            self.listen(url)

    def listen(
        self,
        url: str,
        *,
        protocol: type[Protocol] | None = None,
        transport: str | None = None,
        **options: Any,
    ) -> Listener:
        """Declare one more listener; ``options`` override the server's limits.

        Raises:
            ConfigurationError: for a malformed URL, an unknown scheme or
                option, or an address declared twice.
        """
        listener = Listener.parse(url, self.options.replace(**options), protocol, transport)
        for other in self.listeners:
            if other.bind == listener.bind and other.is_datagram == listener.is_datagram:
                raise ConfigurationError(f"{url!r} repeats the address of {other.url!r}")
        self.listeners.append(listener)
        return listener

    @property
    def stream_listeners(self) -> list[Listener]:
        """Listeners gunicorn binds (TCP and unix), in declaration order."""
        return [lnr for lnr in self.listeners if not lnr.is_datagram]

    @property
    def datagram_listeners(self) -> list[Listener]:
        """UDP listeners, bound by the gunicorn master itself."""
        return [lnr for lnr in self.listeners if lnr.is_datagram]

    @property
    def connections(self) -> dict[int, Connection]:
        """The open stream connections of this worker process, by id (read it, do not change it)."""
        return runtime_of(self).connections

    @property
    def draining(self) -> bool:
        """True once this worker process has begun to stop (or reload)."""
        return runtime_of(self).draining

    def mount_wsgi(self, app: Callable[..., Any]) -> None:
        """Answer the HTTP requests of this server's ``http://`` listeners with a WSGI app.

        WebSocket upgrades on the same port still go to the WebSocket
        callbacks, and ``on_message`` keeps the messages of other protocols.
        See :mod:`geworker.http.wsgi`.
        """
        from .http.wsgi import WSGIHandler

        self.http_handler = WSGIHandler(app)

    def broadcast(self, message: Any, exclude: Iterable[int] = (),
                  all_workers: bool = False) -> int:
        """Send ``message`` to every message connection of this server in this worker.

        Plain HTTP connections are skipped (they answer requests; their
        WebSocket upgrades are included). ``exclude`` holds connection ids.
        With ``all_workers=True`` the message also goes to this server's
        connections in every other worker (``str`` or bytes; it is
        ``messaging.send_to_all(message, exclude, server=name)``, reaching
        other instances too with the Redis backend).

        Returns the number of connections of this worker it was queued for.
        """
        return runtime_of(self).broadcast(message, exclude, all_workers)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Answer 500 when mistakenly run by a WSGI worker.

        gunicorn requires a callable application object; a geworker server
        only works under its own worker class.
        """
        body = (
            f"geworker server {self.name!r} must be run with "
            "'gunicorn -k geworker.Worker' (or -c gunicorn_conf.py).\n"
        ).encode()
        start_response("500 Internal Server Error",
                       [("Content-Type", "text/plain; charset=utf-8"),
                        ("Content-Length", str(len(body)))])
        return [body]

    def __repr__(self) -> str:
        urls = ", ".join(lnr.url for lnr in self.listeners)
        return f"<geworker.Server {self.name!r} [{urls}]>"


class App:
    """Several servers, each with its own callbacks, served by the same workers.

    Workerman apps declare one ``Worker`` per role (a WebSocket gateway, an
    internal ``text://`` admin port, an HTTP API); here each role is a
    :class:`Server` and an ``App`` runs them together::

        gateway = Server("websocket://0.0.0.0:8080", name="gateway")
        admin = Server("text://127.0.0.1:2345", name="admin")
        app = App(gateway, admin)      # gunicorn -k geworker.Worker module:app

    Every gunicorn worker serves every listener of every server (gunicorn's
    workers are identical), so ``-w`` counts processes for all of them; a
    server that needs its own process count or user runs as its own instance.

    Raises:
        ConfigurationError: when no server is given, two servers share a
            name, or two listeners share an address.
    """

    def __init__(self, *servers: Server, name: str = "geworker",
                 messaging: str | None = None) -> None:
        if not servers:
            raise ConfigurationError("App() needs at least one Server")
        if len(servers) > MAX_APP_SERVERS:
            raise ConfigurationError(f"App() runs at most {MAX_APP_SERVERS} servers")
        for server in servers:
            if not isinstance(server, Server):
                raise ConfigurationError(f"App() takes Server objects, not {server!r}")
        names = [s.name for s in servers]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            raise ConfigurationError(f"two servers are named {dup!r}: give each its own name")
        seen: dict[tuple[str, bool], str] = {}
        for server in servers:
            for lnr in server.listeners:
                key = (lnr.bind, lnr.is_datagram)
                if key in seen:
                    raise ConfigurationError(f"{lnr.url!r} of server {server.name!r} repeats "
                                             f"the address of {seen[key]}")
                seen[key] = f"{lnr.url!r} of server " + repr(server.name)
        self.name = name
        self.servers = list(servers)
        chosen = {s.messaging for s in servers if s.messaging is not None}
        if messaging is None and len(chosen) > 1:
            raise ConfigurationError(f"the servers name different messaging backends "
                                     f"({', '.join(sorted(chosen))}): give App(messaging=...)")
        #: The messaging backend of every server of the app (see :class:`Server`).
        self.messaging = check_url(messaging) if messaging is not None else (
            chosen.pop() if chosen else None)

    @property
    def listeners(self) -> list[Listener]:
        """Every listener of every server, in declaration order."""
        return [lnr for server in self.servers for lnr in server.listeners]

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """Answer 500 when mistakenly run by a WSGI worker (see :meth:`Server.__call__`)."""
        return self.servers[0](environ, start_response)

    def __repr__(self) -> str:
        return f"<geworker.App {self.name!r} [{', '.join(s.name for s in self.servers)}]>"
