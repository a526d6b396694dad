"""geworker: multi-process socket servers from plain synchronous callbacks.

Declare a :class:`Server` in your module and run it with
``gunicorn -k geworker.Worker module:server``.

Every public name is loaded on first use: gunicorn's master imports the
worker class before any monkey patching and never imports the application,
so ``import geworker`` loads neither gevent nor h11 nor wsproto.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from . import messaging, timers
    from .errors import (
        ConfigurationError,
        GeworkerError,
        LocalProtocolError,
        MessageTooLarge,
        RemoteProtocolError,
        SendBufferFull,
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
    from .transport.connection import Connection, ConnectionState
    from .transport.datagram import DatagramConnection
    from .worker.worker import Worker

__version__ = "0.1.0"

__all__ = [
    "App",
    "ConfigurationError",
    "Connection",
    "ConnectionState",
    "DatagramConnection",
    "EventStream",
    "FileResponse",
    "FrameProtocol",
    "GeworkerError",
    "HTTPError",
    "Listener",
    "LocalProtocolError",
    "MessageTooLarge",
    "Messenger",
    "Options",
    "Protocol",
    "RawProtocol",
    "RemoteProtocolError",
    "Request",
    "Response",
    "SendBufferFull",
    "Server",
    "TextProtocol",
    "Worker",
    "WorkermanProtocol",
    "__version__",
    "messaging",
    "register_protocol",
    "timers",
]

#: public name -> the module that defines it
_HOMES = {
    "ConfigurationError": ".errors",
    "GeworkerError": ".errors",
    "LocalProtocolError": ".errors",
    "MessageTooLarge": ".errors",
    "RemoteProtocolError": ".errors",
    "SendBufferFull": ".errors",
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
    "Connection": ".transport.connection",
    "ConnectionState": ".transport.connection",
    "DatagramConnection": ".transport.datagram",
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
