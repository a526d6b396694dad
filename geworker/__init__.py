"""geworker: multi-process socket servers from plain synchronous callbacks.

Declare a :class:`Server` in your module and run it with
``gunicorn -k geworker.Worker module:server``; open connections of your own
to other servers with :func:`connect`.

Every public name is loaded on first use: gunicorn's master imports the
worker class before any monkey patching and never imports the application,
so ``import geworker`` loads neither gevent nor h11 nor wsproto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import messaging, timers
    from .client import connect
    from .errors import (
        ConfigurationError,
        ConnectError,
        ConnectionClosed,
        ConnectRefused,
        ConnectTimeout,
        DNSError,
        GeworkerError,
        HandshakeError,
        LocalProtocolError,
        MessageTooLarge,
        ProxyError,
        RemoteProtocolError,
        SendBufferFull,
        TLSError,
    )
    from .http.models import Request
    from .http.responses import EventStream, FileResponse, HTTPError, Response
    from .listener import Listener
    from .messaging.messenger import Messenger
    from .protocols import (
        FrameProtocol,
        Protocol,
        RawProtocol,
        TextProtocol,
        WorkermanProtocol,
    )
    from .registry import register_protocol
    from .server import App, Server
    from .settings import Options
    from .transport.backoff import Backoff
    from .transport.client import ClientConnection
    from .transport.connection import Connection, ConnectionState
    from .transport.datagram import DatagramConnection
    from .transport.udp_client import DatagramClient
    from .websocket.client_connection import WebSocketClientConnection
    from .worker.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "App",
    "Backoff",
    "ClientConnection",
    "ConfigurationError",
    "ConnectError",
    "ConnectRefused",
    "ConnectTimeout",
    "Connection",
    "ConnectionClosed",
    "ConnectionState",
    "DNSError",
    "DatagramClient",
    "DatagramConnection",
    "EventStream",
    "FileResponse",
    "FrameProtocol",
    "GeworkerError",
    "HTTPError",
    "HandshakeError",
    "Listener",
    "LocalProtocolError",
    "MessageTooLarge",
    "Messenger",
    "Options",
    "Protocol",
    "ProxyError",
    "RawProtocol",
    "RemoteProtocolError",
    "Request",
    "Response",
    "SendBufferFull",
    "Server",
    "TLSError",
    "TextProtocol",
    "WebSocketClientConnection",
    "Worker",
    "WorkermanProtocol",
    "__version__",
    "connect",
    "messaging",
    "register_protocol",
    "timers",
]

#: public name -> the module that defines it
_HOMES = {
    "ConfigurationError": ".errors",
    "ConnectError": ".errors",
    "ConnectRefused": ".errors",
    "ConnectTimeout": ".errors",
    "ConnectionClosed": ".errors",
    "DNSError": ".errors",
    "GeworkerError": ".errors",
    "HandshakeError": ".errors",
    "LocalProtocolError": ".errors",
    "MessageTooLarge": ".errors",
    "ProxyError": ".errors",
    "RemoteProtocolError": ".errors",
    "SendBufferFull": ".errors",
    "TLSError": ".errors",
    "connect": ".client",
    "EventStream": ".http.responses",
    "FileResponse": ".http.responses",
    "HTTPError": ".http.responses",
    "Response": ".http.responses",
    "Request": ".http.models",
    "Listener": ".listener",
    "Messenger": ".messaging.messenger",
    "FrameProtocol": ".protocols",
    "Protocol": ".protocols",
    "RawProtocol": ".protocols",
    "TextProtocol": ".protocols",
    "WorkermanProtocol": ".protocols",
    "register_protocol": ".registry",
    "App": ".server",
    "Server": ".server",
    "Options": ".settings",
    "Backoff": ".transport.backoff",
    "ClientConnection": ".transport.client",
    "Connection": ".transport.connection",
    "ConnectionState": ".transport.connection",
    "DatagramClient": ".transport.udp_client",
    "DatagramConnection": ".transport.datagram",
    "WebSocketClientConnection": ".websocket.client_connection",
    "Worker": ".worker.worker",
}


def __getattr__(name: str) -> Any:
    """Load a public name from its module on first use (see the module doc)."""
    from importlib import import_module

    if name in ("timers", "messaging"):
        return import_module(f".{name}", __name__)
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'geworker' has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
