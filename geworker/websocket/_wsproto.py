"""Every access to wsproto's private state, in one place.

wsproto's public API is enough to run a WebSocket connection, but not to run
it fast and bounded. geworker leans on these internals of wsproto 1.2-1.3
(the ``wsproto`` dependency is bounded to ``<1.4`` for that reason):

* ``Connection._events``: the queue of received events, replaced by a list
  (an idle connection then holds 56 bytes instead of an empty deque's 600);
* ``Connection._proto``: the ``FrameProtocol``, whose ``_frame_decoder``
  (``header``, ``buffer.buffer``) and ``_message_decoder`` (``opcode``) say
  whether wsproto is between messages, the only moment the fast path may
  decode frames itself; and which ``PerMessageDeflate.frame_outbound`` needs
  to compress a message framed by the fast path;
* ``PerMessageDeflate._decompressor``, ``_inbound_compressed`` and
  ``_inbound_is_compressible``: the inflate state that
  :class:`~geworker.websocket.deflate._BoundedDeflate` caps.

Nothing else in geworker reads an underscore name of wsproto: the fast codec
(:mod:`~geworker.websocket.frames`), the deflate extension
(:mod:`~geworker.websocket.deflate`) and the driver
(:mod:`~geworker.websocket.protocol`) go through the functions below, and
``tests/unit/websocket/test_wsproto_compat.py`` fails, naming the attribute,
when an installed wsproto no longer has what they rely on.
"""

from __future__ import annotations

from typing import Any

from wsproto.connection import Connection as WSConnection
from wsproto.connection import ConnectionType
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import Opcode, RsvBits

__all__ = ["WsprotoView", "compress_message", "inbound_state", "inflater", "new_server",
           "reset_inbound", "set_inbound_compressible", "set_inflater"]

_NO_RSV = RsvBits(False, False, False)


class _EventQueue(list):  # type: ignore[type-arg]
    """wsproto's queue of received events, as a list: it holds one or two events at
    a time, and an idle connection then keeps 56 bytes instead of an empty deque's 600."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


class WsprotoView:
    """What the fast path needs to see of one wsproto connection.

    Attributes:
        ws: the wsproto connection.
        frame_decoder: its ``FrameProtocol._frame_decoder``.
        message_decoder: its ``FrameProtocol._message_decoder``.
    """

    __slots__ = ("frame_decoder", "message_decoder", "ws")

    def __init__(self, ws: WSConnection) -> None:
        self.ws = ws
        proto = ws._proto
        self.frame_decoder: Any = proto._frame_decoder
        self.message_decoder: Any = proto._message_decoder

    def between_messages(self) -> bool:
        """True when wsproto holds no received byte, no partial frame and no partial message."""
        decoder = self.frame_decoder
        return (decoder.header is None and not decoder.buffer.buffer
                and self.message_decoder.opcode is None)


def new_server(extensions: list[Extension] | None = None) -> WSConnection:
    """A server-side wsproto connection with the compact event queue."""
    ws = WSConnection(ConnectionType.SERVER, extensions)
    ws._events = _EventQueue()  # type: ignore[assignment]
    return ws


def compress_message(deflate: PerMessageDeflate, ws: WSConnection, text: bool,
                     payload: bytes) -> bytes:
    """``payload`` compressed as one whole message by wsproto's own compressor.

    The compressor's state stays wsproto's, so messages framed by the fast
    path and by wsproto share one deflate context, as the peer expects.
    """
    opcode = Opcode.TEXT if text else Opcode.BINARY
    return deflate.frame_outbound(ws._proto, opcode, _NO_RSV, payload, True)[1]


# -- PerMessageDeflate's inbound state --------------------------------------------


def inflater(ext: PerMessageDeflate) -> Any:
    """The extension's ``zlib`` decompressor of the current context (None: not started)."""
    return ext._decompressor


def set_inflater(ext: PerMessageDeflate, value: Any) -> None:
    """Replace (None: drop) the decompressor; dropped, wsproto starts a fresh context."""
    ext._decompressor = value


def inbound_state(ext: PerMessageDeflate) -> tuple[bool | None, bool | None]:
    """``(compressed, compressible)`` of the message being received (None: no message)."""
    return ext._inbound_compressed, ext._inbound_is_compressible


def set_inbound_compressible(ext: PerMessageDeflate, value: bool) -> None:
    """Whether the frame being received may carry compressed data."""
    ext._inbound_is_compressible = value


def reset_inbound(ext: PerMessageDeflate) -> None:
    """The received message is complete: the next frame starts a new one."""
    ext._inbound_compressed = None
