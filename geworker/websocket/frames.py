"""The fast frame codec: the common WebSocket frames, without wsproto.

Most traffic is complete, unfragmented, uncompressed text or binary
messages. :func:`decode_simple` decodes such client frames and
:func:`encode_message` frames server messages (compressed by wsproto's own
permessage-deflate code when negotiated), at C speed where it matters (the
unmasking is one big-integer XOR). Anything else -- control frames,
fragments, RSV bits, partial or oversized frames, invalid UTF-8, any doubt --
is left to wsproto, which defines the behaviour; the differential tests
(``tests/protocols/test_websocket_fastpath.py``) hold both paths to the same
output.

:class:`~geworker.websocket.protocol.WebSocketProtocol` decides when the
codec may run: between messages, where wsproto holds no state the fast
path could bypass (:meth:`geworker.websocket._wsproto.WsprotoView.between_messages`).
No I/O, no gevent.
"""

from __future__ import annotations

import struct
from typing import Any

from wsproto.connection import Connection as WSConnection
from wsproto.extensions import PerMessageDeflate

from ._wsproto import compress_message

__all__ = ["decode_simple", "encode_message"]

_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack


def decode_simple(data: bytes, limit: int, messages: list[Any]) -> int:
    """Decode the complete, simple frames at the start of ``data``; returns the bytes used.

    Each frame's message is appended to ``messages`` (``str`` for text,
    ``bytes`` for binary). Simple: FIN set, no RSV bit, text or binary,
    masked, the shortest length encoding, at most ``limit`` bytes, valid
    UTF-8 for text. Decoding stops at the first frame that is not (or not
    yet complete): wsproto gets the rest.
    """
    end = len(data)
    pos = 0
    while end - pos >= 6:
        first = data[pos]
        if first != 0x81 and first != 0x82:  # FIN, no RSV, TEXT or BINARY
            break
        length = data[pos + 1] ^ 0x80  # the MASK bit must be set
        if length < 126:
            start = pos + 6
        elif length == 126:
            if end - pos < 8:
                break
            length = data[pos + 2] << 8 | data[pos + 3]
            if length < 126:
                break
            start = pos + 8
        elif length == 127:
            if end - pos < 14:
                break
            length = int.from_bytes(data[pos + 2:pos + 10], "big")
            if length < 65536:  # (a length with the MSB set never fits in data)
                break
            start = pos + 14
        else:  # not masked
            break
        stop = start + length
        if length > limit or stop > end:
            break
        if length:
            # Unmask as one big integer XOR: C speed, whatever the length.
            mask = data[start - 4:start] * ((length >> 2) + 1)
            payload = (int.from_bytes(data[start:stop], "little")
                       ^ int.from_bytes(mask[:length], "little")).to_bytes(length, "little")
        else:
            payload = b""
        if first == 0x81:
            try:
                messages.append(payload.decode())
            except UnicodeDecodeError:
                break  # wsproto fails it with 1007 and its own reason
        else:
            messages.append(payload)
        pos = stop
    return pos


def encode_message(message: Any, deflate: PerMessageDeflate | None = None,
                   ws: WSConnection | None = None) -> bytes | None:
    """One message as an unmasked FIN frame, as wsproto frames it.

    ``str`` is a text frame, bytes-like a binary frame; with ``deflate`` (and
    the wsproto connection ``ws`` it belongs to) the payload is compressed
    and RSV1 set. Returns None for any other type (wsproto's path then
    refuses it).
    """
    if isinstance(message, str):
        payload, first = message.encode(), 0x81
    elif isinstance(message, bytes):
        payload, first = message, 0x82
    elif isinstance(message, (bytearray, memoryview)):
        payload, first = bytes(message), 0x82
    else:
        return None
    if deflate is not None and ws is not None:
        payload = compress_message(deflate, ws, first == 0x81, payload)
        first |= 0x40  # RSV1: compressed
    size = len(payload)
    if size < 126:
        return bytes((first, size)) + payload
    if size < 65536:
        return _PACK_16(first, 126, size) + payload
    return _PACK_64(first, 127, size) + payload
