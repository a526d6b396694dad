"""``geworker.connect(url)``: a client connection, with the same protocols and API as a server's.

The URL forms are the listeners' (see :class:`~geworker.listener.Listener`),
read from the client's side::

    tcp://host:port   text://host:port   frame://host:port   NAME://host:port
    unix:///path      text+unix:///path
    udp://host:port   text+udp://host:port
    ws://host[:port]/path?query          wss://host[:port]/path?query
    text+tls://host:port                 (PROTO+tls://: any protocol over TLS)

:func:`connect` parses it, builds the connection (a
:class:`~geworker.transport.client.ClientConnection`, a
:class:`~geworker.websocket.client_connection.WebSocketClientConnection` or a
:class:`~geworker.transport.udp_client.DatagramClient`) and starts
connecting in a new greenlet; the rules it follows are in those modules and
in ``docs/clients.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .http.responses import check_header
from .listener import Listener
from .registry import TLS_ALIASES, TRANSPORTS, lookup_protocol
from .server import check_callback
from .settings import Options
from .transport.backoff import Backoff
from .transport.client import CLIENT_CALLBACKS, ClientConnection
from .transport.outbound import Endpoint, Proxy
from .transport.udp_client import DatagramClient

__all__ = ["connect"]

#: Ports a WebSocket URL implies.
_WS_PORTS = {False: 80, True: 443}

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def connect(
    url: str,
    *,
    blocking: bool = False,
    connect_timeout: float = 10.0,
    reconnect: bool | Backoff = False,
    proxy: str | None = None,
    server_hostname: str | None = None,
    headers: Headers | None = None,
    subprotocols: Iterable[str] | None = None,
    on_connect: Callable[..., Any] | None = None,
    on_message: Callable[..., Any] | None = None,
    on_close: Callable[..., Any] | None = None,
    on_error: Callable[..., Any] | None = None,
    on_buffer_full: Callable[..., Any] | None = None,
    on_buffer_drain: Callable[..., Any] | None = None,
    log: Any = None,
    **options: Any,
) -> ClientConnection | DatagramClient:
    """Open a client connection to ``url``; returns it at once (connecting) unless ``blocking``.

    Usable in any greenlet of a worker (a callback, a timer, ``on_worker_start``)
    and in a plain script, monkey-patched or not (see ``docs/clients.md``).

    Args:
        url: where to connect (see the module documentation for the forms).
        blocking: return only once connected (see ``wait_connected``):
            raises the attempt's :class:`~geworker.errors.ConnectError` if it
            fails and no retry follows.
        connect_timeout: seconds each attempt may take, everything included
            (DNS, TCP, the proxy's tunnel, TLS, the WebSocket handshake).
        reconnect: True (or a :class:`~geworker.transport.backoff.Backoff` to
            tune it) to reconnect automatically after a close or a failed attempt.
        proxy: an HTTP proxy to tunnel through with ``CONNECT``,
            ``http://[user:password@]host:port`` (stream URLs only).
        server_hostname: the name the server's TLS certificate must carry
            (default: the URL's host).
        headers: extra headers of the WebSocket handshake request.
        subprotocols: WebSocket subprotocols to offer, in order of preference.
        on_connect, on_message, on_close, on_error, on_buffer_full,
            on_buffer_drain: the callbacks, as on a server (they can also be
            set on the returned connection before the calling greenlet yields).
        log: a logger (default: the ``geworker`` logger).
        **options: limits, as for a listener (:class:`~geworker.settings.Options`):
            ``max_package_size``, ``max_send_buffer_size``, ``idle_timeout``,
            ``close_timeout``, ``ssl_context``, the ``websocket_*`` options...

    Raises:
        ConfigurationError: for a URL or an argument that cannot work.
        ConnectError: with ``blocking``, when connecting failed.
    """
    settings = Options().replace(**options)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise ConfigurationError(f"connect({url!r}) needs a scheme, e.g. tcp://127.0.0.1:2345")
    name, _, via = scheme.partition("+")
    name = TLS_ALIASES.get(name, name)
    tls = scheme in TLS_ALIASES or via == "tls"
    if name == "http":
        raise ConfigurationError(f"{url}: connect() speaks message protocols; for HTTP requests "
                                 "use an HTTP client (urllib.request, httpx, requests)")
    try:
        found, default_transport = lookup_protocol(name)
    except ConfigurationError as exc:
        raise ConfigurationError(f"{url}: {exc}") from None
    transport = "tcp" if via == "tls" else via or default_transport
    if transport not in TRANSPORTS:
        raise ConfigurationError(f"{url}: unknown transport {transport!r} "
                                 f"(use {', '.join(TRANSPORTS)} or tls)")
    if tls and transport != "tcp":
        raise ConfigurationError(f"{url}: TLS runs over tcp only, not {transport}")
    if settings.ssl_context is not None and not tls:
        raise ConfigurationError(f"{url}: ssl_context is for TLS URLs (wss://, PROTO+tls://)")
    websocket = _is_websocket(found)
    if transport == "udp" and (reconnect or proxy):
        raise ConfigurationError(f"{url}: UDP has no connection to reconnect or to tunnel")
    if proxy is not None and transport == "unix":
        raise ConfigurationError(f"{url}: a proxy carries TCP connections, not unix sockets")
    if (headers or subprotocols) and not websocket:
        raise ConfigurationError(f"{url}: headers and subprotocols are WebSocket options")

    if transport == "unix":
        if not parts.path:
            raise ConfigurationError(f"{url} needs a path: unix:///run/app.sock")
        host, port = "", 0
    else:
        try:
            port = parts.port or (_WS_PORTS[tls] if websocket else 0)
        except ValueError as exc:
            raise ConfigurationError(f"bad port in {url!r}: {exc}") from None
        host = parts.hostname or ""
        if not host or not port:
            raise ConfigurationError(f"connect({url!r}) needs host:port")
    endpoint = Endpoint(url, transport, host, port, parts.path if transport == "unix" else "",
                        tls, settings.ssl_context, server_hostname,
                        Proxy.parse(proxy) if proxy is not None else None,
                        _positive("connect_timeout", connect_timeout))
    backoff = Backoff() if reconnect is True else reconnect or None

    conn: ClientConnection | DatagramClient
    if websocket:
        from .websocket.client import WebSocketClientProtocol
        from .websocket.client_connection import WebSocketClientConnection

        listener = Listener(url, WebSocketClientProtocol, transport, host, port,
                            endpoint.path, tls, settings)
        netloc = f"[{host}]" if ":" in host else host or "localhost"
        if parts.port is not None:
            netloc += f":{port}"
        target = (parts.path if transport != "unix" else "") or "/"
        if parts.query:
            target += f"?{parts.query}"
        conn = WebSocketClientConnection(listener, endpoint, netloc, target,
                                         list(subprotocols or ()), _header_pairs(headers),
                                         backoff, log)
    else:
        listener = Listener(url, found, transport, host, port, endpoint.path, tls, settings)
        if transport == "udp":
            conn = DatagramClient(listener, endpoint, log)
        else:
            conn = ClientConnection(listener, endpoint, backoff, log)
    given = {"on_connect": on_connect, "on_message": on_message, "on_close": on_close,
             "on_error": on_error, "on_buffer_full": on_buffer_full,
             "on_buffer_drain": on_buffer_drain}
    for callback in CLIENT_CALLBACKS:
        func = given[callback]
        if func is not None:
            check_callback(callback, func)
            setattr(conn, callback, func)
    conn.start()
    if blocking:
        conn.wait_connected()
    return conn


def _is_websocket(protocol: type) -> bool:
    """True for WebSocketProtocol and its subclasses (without importing wsproto for others)."""
    return any(cls.__module__ == "geworker.websocket.protocol"
               and cls.__name__ == "WebSocketProtocol" for cls in protocol.__mro__)


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ConfigurationError(f"{name} must be positive")
    return value


def _header_pairs(headers: Headers | None) -> list[tuple[bytes, bytes]]:
    if not headers:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [check_header(name, value) for name, value in items]
