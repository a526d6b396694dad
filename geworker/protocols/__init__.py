"""Listener protocols, and the registry that maps URL schemes to them."""

from __future__ import annotations

from ..errors import ConfigurationError
from .base import Protocol
from .frame import FrameProtocol
from .http import HttpProtocol
from .raw import RawProtocol
from .text import TextProtocol
from .websocket import WebSocketProtocol
from .workerman import WorkermanProtocol

__all__ = [
    "FrameProtocol",
    "Protocol",
    "RawProtocol",
    "TextProtocol",
    "WebSocketProtocol",
    "WorkermanProtocol",
    "lookup_protocol",
    "register_protocol",
]

#: scheme -> (protocol class, default transport)
_REGISTRY: dict[str, tuple[type[Protocol], str]] = {
    "tcp": (RawProtocol, "tcp"),
    "udp": (RawProtocol, "udp"),
    "unix": (RawProtocol, "unix"),
    "text": (TextProtocol, "tcp"),
    "frame": (FrameProtocol, "tcp"),
    "http": (HttpProtocol, "tcp"),
    "websocket": (WebSocketProtocol, "tcp"),
    "ws": (WebSocketProtocol, "tcp"),
}


def register_protocol(scheme: str, protocol: type[Protocol], transport: str = "tcp") -> None:
    """Make ``scheme://host:port`` listeners use ``protocol``.

    Args:
        scheme: lowercase letters, digits and ``-``, starting with a letter.
        protocol: a :class:`Protocol` subclass.
        transport: ``"tcp"`` (the default), ``"udp"`` or ``"unix"``.

    Raises:
        ConfigurationError: for a malformed scheme, a built-in scheme, or a
            class that is not a :class:`Protocol`.
    """
    if not (scheme[:1].isalpha() and scheme.replace("-", "").isalnum() and scheme.islower()):
        raise ConfigurationError(f"invalid protocol scheme {scheme!r}")
    if scheme in ("tcp", "udp", "unix", "text", "frame"):
        raise ConfigurationError(f"{scheme!r} is built in and cannot be replaced")
    if not (isinstance(protocol, type) and issubclass(protocol, Protocol)):
        raise ConfigurationError(f"{protocol!r} is not a geworker.Protocol subclass")
    if transport not in ("tcp", "udp", "unix"):
        raise ConfigurationError(f"unknown transport {transport!r}")
    _REGISTRY[scheme] = (protocol, transport)


def lookup_protocol(scheme: str) -> tuple[type[Protocol], str]:
    """Return ``(protocol class, default transport)`` for a URL scheme.

    Raises:
        ConfigurationError: when no protocol is registered under ``scheme``.
    """
    try:
        return _REGISTRY[scheme]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise ConfigurationError(
            f"no protocol registered for {scheme}:// (known: {known}); "
            "use geworker.register_protocol()"
        ) from None
