"""permessage-deflate (RFC 7692): choosing an offer, and inflating within a bound.

A client offers permessage-deflate with parameters in its
``Sec-WebSocket-Extensions`` header. :func:`negotiate` takes the first offer
geworker can honour (:func:`normalize_offer` declines the malformed ones, as
RFC 7692 section 5 asks) and returns the header value to answer with and the
wsproto extension that then compresses and inflates the connection's
messages.

That extension, :class:`_BoundedDeflate`, is wsproto's ``PerMessageDeflate``
with a bound (for both sides: a client offers it with :func:`client_offer`):
wsproto inflates each received chunk whole, so a small, highly
compressed frame (a "zip bomb") could expand to gigabytes in memory; here
inflating stops at ``max_size`` bytes per message and the connection is closed
with 1009. It reads wsproto's inflate state through
:mod:`geworker.websocket._wsproto`. No I/O, no gevent.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

from . import _wsproto

if TYPE_CHECKING:
    from collections.abc import Iterable

    from wsproto.frame_protocol import FrameDecoder, FrameProtocol

__all__ = ["client_offer", "negotiate", "normalize_offer"]

_DEFLATE_FLAGS = ("server_no_context_takeover", "client_no_context_takeover")
_DEFLATE_BITS = ("server_max_window_bits", "client_max_window_bits")
_SYNC_TAIL = b"\x00\x00\xff\xff"


def normalize_offer(offer: str) -> str | None:
    """One permessage-deflate offer in wsproto's syntax, or None to decline it.

    RFC 7692 section 5: an offer with an unknown or repeated parameter, or a
    bad value, is declined. ``server_max_window_bits=8`` is declined too:
    zlib cannot compress raw deflate with a 256-byte window.
    """
    name, *params = (part.strip() for part in offer.split(";"))
    if name.lower() != "permessage-deflate":
        return None
    seen = set()
    out = ["permessage-deflate"]
    for param in params:
        key, eq, value = param.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"')
        if key in seen:
            return None
        seen.add(key)
        if key in _DEFLATE_FLAGS:
            if eq:
                return None
            out.append(key)
        elif key in _DEFLATE_BITS:
            if not eq and key == "client_max_window_bits":
                out.append(key)
                continue
            if not value.isdigit() or not 9 <= int(value) <= 15:
                if key == "client_max_window_bits" and value == "8":
                    value = "9"  # a 512-byte window inflates what a 256-byte one deflated
                else:
                    return None
            out.append(f"{key}={int(value)}")
        else:
            return None
    return "; ".join(out)


def negotiate(offers: Iterable[str], max_size: int) -> tuple[str, PerMessageDeflate] | None:
    """The first acceptable permessage-deflate offer, or None when there is none.

    Args:
        offers: the client's ``Sec-WebSocket-Extensions`` offers, in order.
        max_size: the most bytes a received message may inflate to.

    Returns:
        ``(header value, extension)``: the ``Sec-WebSocket-Extensions`` value
        of the answer, and the extension to give wsproto.
    """
    for offer in offers:
        normalized = normalize_offer(offer)
        if normalized is None:
            continue
        deflate = _BoundedDeflate(max_size)
        params = deflate.accept(normalized)
        if params is not None:
            return (f"permessage-deflate; {params}" if params else "permessage-deflate"), deflate
    return None


def client_offer(max_size: int) -> PerMessageDeflate:
    """The permessage-deflate extension a client offers, inflating at most ``max_size``
    bytes per received message (wsproto sends its offer and takes the server's answer)."""
    return _BoundedDeflate(max_size)


class _BoundedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, inflating at most ``max_size`` bytes per message.

    wsproto inflates each received chunk whole; here ``decompress`` gets a
    ``max_length``, so a highly compressed frame stops at the cap (close
    1009) instead of expanding in memory. A control frame between the
    fragments of a compressed message no longer resets the message's
    compressed flag.
    """

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size
        self._inflated = 0

    def frame_inbound_header(self, proto: FrameDecoder | FrameProtocol, opcode: Opcode,
                             rsv: RsvBits, payload_length: int) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            _wsproto.set_inbound_compressible(self, False)
            return RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = _wsproto.inflater(self)
        assert decompressor is not None
        budget = self.max_size - self._inflated
        try:
            out: bytes = decompressor.decompress(data, budget + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_payload_data(self, proto: FrameDecoder | FrameProtocol,
                                   data: bytes) -> bytes | CloseReason:
        compressed, compressible = _wsproto.inbound_state(self)
        if not compressed or not compressible:
            return data
        return self._inflate(data)

    def frame_inbound_complete(self, proto: FrameDecoder | FrameProtocol,
                               fin: bool) -> bytes | CloseReason | None:
        compressed, compressible = _wsproto.inbound_state(self)
        if not fin or not compressible:
            return None
        if not compressed:
            _wsproto.reset_inbound(self)
            return None
        out = self._inflate(_SYNC_TAIL)
        self._inflated = 0
        _wsproto.reset_inbound(self)
        # The peer's messages: a client inflates the server's, and the reverse.
        if (self.server_no_context_takeover if proto.client
                else self.client_no_context_takeover):
            _wsproto.set_inflater(self, None)
        return out
