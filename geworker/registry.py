"""The scheme registry: what a listener URL's scheme means.

Each scheme names a protocol class, the transport used when the URL does not
pick one, and (through the protocol) the connection class that serves it on
stream transports. The built-in entries are dotted paths resolved on first
use, so a ``text://`` server never imports h11 or wsproto, and nothing here
imports gevent: the connection classes live in the layers above the
protocols (see ``docs/architecture.md``).
"""

from __future__ import annotations

import difflib
from importlib import import_module
from typing import Any

from .errors import ConfigurationError
from .protocols.base import Protocol

__all__ = ["BUILTIN_SCHEMES", "TLS_ALIASES", "TRANSPORTS", "connection_class", "known_schemes",
           "lookup_protocol", "register_protocol"]

TRANSPORTS = ("tcp", "udp", "unix")
#: Schemes that mean "this protocol, over TLS".
TLS_ALIASES = {"https": "http", "wss": "websocket"}

_RAW = "geworker.protocols.raw:RawProtocol"
_HTTP = "geworker.http.protocol:HttpProtocol"
_WEBSOCKET = "geworker.websocket.protocol:WebSocketProtocol"

#: scheme -> (protocol class or its dotted path, default transport)
_SCHEMES: dict[str, tuple[type[Protocol] | str, str]] = {
    "tcp": (_RAW, "tcp"),
    "udp": (_RAW, "udp"),
    "unix": (_RAW, "unix"),
    "text": ("geworker.protocols.text:TextProtocol", "tcp"),
    "frame": ("geworker.protocols.frame:FrameProtocol", "tcp"),
    "http": (_HTTP, "tcp"),
    "websocket": (_WEBSOCKET, "tcp"),
    "ws": (_WEBSOCKET, "tcp"),
}

#: Schemes that cannot be replaced by register_protocol().
BUILTIN_SCHEMES = frozenset(("tcp", "udp", "unix", "text", "frame"))

#: Protocol classes (by dotted path) served by their own connection class; a
#: subclass of one of them is served by the same class.
_CONNECTIONS = {
    _HTTP: "geworker.http.connection:HttpConnection",
    _WEBSOCKET: "geworker.websocket.connection:WebSocketConnection",
}
_PLAIN_CONNECTION = "geworker.transport.connection:Connection"
_resolved: dict[type, type] = {}


def _resolve(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(import_module(module), name)


def _path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_protocol(scheme: str, protocol: type[Protocol], transport: str = "tcp") -> None:
    """Make ``scheme://host:port`` listeners use ``protocol``.

    Args:
        scheme: lowercase letters, digits and ``-``, starting with a letter.
        protocol: a :class:`~geworker.protocols.Protocol` subclass.
        transport: ``"tcp"`` (the default), ``"udp"`` or ``"unix"``.

    Raises:
        ConfigurationError: for a malformed scheme, a built-in scheme, or a
            class that is not a :class:`~geworker.protocols.Protocol`.
    """
    if not (scheme[:1].isalpha() and scheme.replace("-", "").isalnum() and scheme.islower()):
        raise ConfigurationError(f"invalid protocol scheme {scheme!r}")
    if scheme in BUILTIN_SCHEMES:
        raise ConfigurationError(f"{scheme!r} is built in and cannot be replaced")
    if not (isinstance(protocol, type) and issubclass(protocol, Protocol)):
        raise ConfigurationError(f"{protocol!r} is not a geworker.Protocol subclass")
    if transport not in TRANSPORTS:
        raise ConfigurationError(f"unknown transport {transport!r}")
    _SCHEMES[scheme] = (protocol, transport)


def lookup_protocol(scheme: str) -> tuple[type[Protocol], str]:
    """Return ``(protocol class, default transport)`` for a URL scheme.

    Raises:
        ConfigurationError: when no protocol is registered under ``scheme``.
    """
    try:
        protocol, transport = _SCHEMES[scheme]
    except KeyError:
        raise ConfigurationError(f"unknown scheme {scheme}://{_suggestion(scheme)}; "
                                 f"known: {_known_text()}") from None
    if isinstance(protocol, str):
        protocol = _resolve(protocol)
        _SCHEMES[scheme] = (protocol, transport)
    assert isinstance(protocol, type)
    return protocol, transport


def known_schemes() -> list[str]:
    """Every scheme a listener URL may start with, TLS aliases included, sorted."""
    return sorted({*_SCHEMES, *TLS_ALIASES})


def _suggestion(scheme: str) -> str:
    close = difflib.get_close_matches(scheme, known_schemes(), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}://?)" if close else ""


def _known_text() -> str:
    return (", ".join(f"{s}://" for s in known_schemes())
            + "; PROTOCOL+TRANSPORT:// picks the transport (text+udp://, frame+unix://), "
            "PROTOCOL+tls:// adds TLS (text+tls://); geworker.register_protocol() adds schemes")


def connection_class(protocol: type[Protocol]) -> type:
    """The connection class that serves ``protocol`` on stream transports.

    HTTP and WebSocket protocols (and their subclasses) have their own; every
    other protocol rides the plain :class:`~geworker.transport.connection.Connection`.
    Importing it loads gevent: call this in a worker, not in the master.
    """
    found = _resolved.get(protocol)
    if found is None:
        path = next((p for p in map(_CONNECTIONS.get, map(_path, protocol.__mro__)) if p),
                    _PLAIN_CONNECTION)
        found = _resolved[protocol] = _resolve(path)
    return found
