"""``tcp://`` and ``udp://``: bytes exactly as they arrive, no framing."""

from __future__ import annotations

from typing import Any

from .base import Protocol, to_bytes

__all__ = ["RawProtocol"]


class RawProtocol(Protocol):
    """Each received chunk (or datagram) is one ``bytes`` message.

    Stream chunks follow the kernel's segmentation, so a message sent by the
    peer may arrive split or merged: use ``text://``, ``frame://`` or a custom
    protocol when message boundaries matter.
    """

    __slots__ = ()

    def receive_data(self, data: bytes) -> list[Any]:
        """Return ``[data]``: the chunk is the message."""
        return [data]

    def encode(self, message: Any) -> bytes:
        """``bytes`` are sent as they are, ``str`` as UTF-8."""
        return to_bytes(message)
