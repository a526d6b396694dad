"""``frame://``: a 4-byte big-endian total length (header included), then the payload."""

from __future__ import annotations

from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError
from .base import Protocol, to_bytes

__all__ = ["FrameProtocol"]

HEADER_SIZE = 4
MAX_FRAME_SIZE = 0xFFFFFFFF


class FrameProtocol(Protocol):
    """Length-prefixed binary messages, delivered as ``bytes``.

    The size check happens as soon as the header arrives, so a header that
    announces 4 GiB closes the connection before any of it is buffered.
    """

    __slots__ = ("_buffer",)

    def __init__(self, max_package_size: int = 10 * 1024 * 1024) -> None:
        super().__init__(max_package_size)
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> list[Any]:
        """Cut complete frames out of the received bytes."""
        buffer = self._buffer
        if not buffer and int.from_bytes(data[:HEADER_SIZE], "big") == len(data) >= HEADER_SIZE:
            self._check_size(len(data))  # exactly one frame: the common case
            return [data[HEADER_SIZE:]]
        buffer += data
        messages = []
        start = 0
        available = len(buffer)
        while available - start >= HEADER_SIZE:
            total = int.from_bytes(buffer[start : start + HEADER_SIZE], "big")
            if total < HEADER_SIZE:
                raise RemoteProtocolError(f"frame length {total} is shorter than its header")
            self._check_size(total)
            if available - start < total:
                break
            messages.append(bytes(buffer[start + HEADER_SIZE : start + total]))
            start += total
        if start:
            del buffer[:start]
        return messages

    def encode(self, message: Any) -> bytes:
        """Prefix the payload with its total length."""
        payload = to_bytes(message)
        total = len(payload) + HEADER_SIZE
        if total > MAX_FRAME_SIZE:
            raise LocalProtocolError(f"a frame carries at most {MAX_FRAME_SIZE - 4} bytes")
        return total.to_bytes(HEADER_SIZE, "big") + payload

    @property
    def has_partial_message(self) -> bool:
        """True while an unfinished frame is buffered."""
        return bool(self._buffer)
