"""Sans-IO listener protocols: bytes in, messages out, no sockets and no gevent.

The framings here are the plain ones (raw bytes, text lines, length-prefixed
frames, the Workerman adapter); HTTP and WebSocket have packages of their own
(:mod:`geworker.http`, :mod:`geworker.websocket`), and the registry that maps
URL schemes to protocols is :mod:`geworker.registry`.
"""

from __future__ import annotations

from .base import Protocol
from .frame import FrameProtocol
from .raw import RawProtocol
from .text import TextProtocol
from .workerman import WorkermanProtocol

__all__ = ["FrameProtocol", "Protocol", "RawProtocol", "TextProtocol", "WorkermanProtocol"]
