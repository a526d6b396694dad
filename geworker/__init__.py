"""geworker: multi-process socket servers from plain synchronous callbacks.

Declare a :class:`Server` in your module and run it with
``gunicorn -k geworker.Worker module:server``.

This import stays light: gunicorn's master imports the worker class before
any monkey patching, and the master never imports the application.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import timers
from .errors import (
    ConfigurationError,
    GeworkerError,
    LocalProtocolError,
    MessageTooLarge,
    RemoteProtocolError,
    SendBufferFull,
)
from .http import EventStream, FileResponse, HTTPError, Request, Response
from .listener import Listener
from .protocols import (
    FrameProtocol,
    Protocol,
    RawProtocol,
    TextProtocol,
    WorkermanProtocol,
    register_protocol,
)
from .server import Server
from .settings import Options

if TYPE_CHECKING:
    from .connection import Connection, ConnectionState
    from .datagram import DatagramConnection
    from .worker import Worker

__version__ = "0.1.0"

__all__ = [
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
    "register_protocol",
    "timers",
]

_LAZY = {
    "Worker": ".worker",
    "Connection": ".connection",
    "ConnectionState": ".connection",
    "DatagramConnection": ".datagram",
}


def __getattr__(name: str) -> Any:
    """Import gevent- and gunicorn-heavy names on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'geworker' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
