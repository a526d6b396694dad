"""An adapter for protocols written against Workerman's ``input/decode/encode`` contract."""

from __future__ import annotations

from typing import Any

from ..errors import RemoteProtocolError
from .base import Protocol

__all__ = ["WorkermanProtocol"]


class WorkermanProtocol(Protocol):
    """Port a Workerman protocol class method by method.

    Override :meth:`input`, :meth:`decode` and :meth:`encode`, as in Workerman's
    ``ProtocolInterface`` but without its ``$connection`` argument: each stream
    connection has its own protocol instance, so the state a Workerman protocol
    keeps on ``$connection`` lives on ``self`` (and bytes it would send from
    ``input``, such as a handshake answer, are returned by :meth:`data_to_send`)::

        class LengthLine(WorkermanProtocol):
            def input(self, buffer: bytes) -> int:
                pos = buffer.find(b"\\n")
                return 0 if pos < 0 else pos + 1

            def decode(self, package: bytes) -> str:
                return package.rstrip(b"\\r\\n").decode()

            def encode(self, message: str) -> bytes:
                return message.encode() + b"\\n"

    ``input`` returns 0 for "need more bytes", the length of the first complete
    package, or -1 to reject the data (the connection is closed). A length
    above ``max_package_size`` is rejected too, as in Workerman.
    """

    def __init__(self, max_package_size: int = 10 * 1024 * 1024) -> None:
        super().__init__(max_package_size)
        self._buffer = b""

    def input(self, buffer: bytes) -> int:
        """Return 0 (incomplete), the first package's length, or -1 (bad data)."""
        raise NotImplementedError

    def decode(self, package: bytes) -> Any:
        """Turn one complete package into the message given to ``on_message``."""
        return package

    def receive_data(self, data: bytes) -> list[Any]:
        """Loop ``input``/``decode`` over the buffered bytes."""
        buffer = self._buffer + data if self._buffer else data
        messages = []
        while buffer:
            length = self.input(buffer)
            if length == 0:
                self._check_size(len(buffer))
                break
            if length < 0:
                raise RemoteProtocolError(f"{type(self).__name__}.input() rejected the data")
            self._check_size(length)
            if length > len(buffer):
                self._check_size(len(buffer))
                break
            messages.append(self.decode(buffer[:length]))
            buffer = buffer[length:]
        self._buffer = buffer
        return messages

    @property
    def has_partial_message(self) -> bool:
        """True while bytes of an unfinished package are buffered."""
        return bool(self._buffer)
