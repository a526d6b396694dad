"""``text://``: newline-delimited UTF-8 messages."""

from __future__ import annotations

from typing import Any

from ..errors import RemoteProtocolError
from .base import Protocol, to_bytes

__all__ = ["TextProtocol"]


class TextProtocol(Protocol):
    """One message per line, ended by ``\\n``; a ``\\r`` before it is dropped.

    Messages are delivered as ``str``. Bytes that are not UTF-8 close the
    connection with a logged reason, as does a line longer than
    ``max_package_size`` (counted with its line ending). Sending a ``str`` or
    ``bytes`` appends ``\\n``.
    """

    __slots__ = ("_buffer",)

    def __init__(self, max_package_size: int = 10 * 1024 * 1024) -> None:
        super().__init__(max_package_size)
        self._buffer = bytearray()

    def receive_data(self, data: bytes) -> list[Any]:
        """Split complete lines out of the received bytes."""
        end = data.find(b"\n")
        if end == len(data) - 1 and not self._buffer:  # exactly one line: the common case
            self._check_size(end + 1)
            try:
                return [data[:end].decode().removesuffix("\r")]
            except UnicodeDecodeError as exc:
                raise RemoteProtocolError(
                    f"text line is not valid UTF-8 ({exc.reason})") from None
        end = data.rfind(b"\n")
        if end < 0:
            self._buffer += data
            self._check_size(len(self._buffer))
            return []
        if self._buffer:
            self._buffer += data[: end + 1]
            complete = bytes(self._buffer)
            self._buffer.clear()
        else:
            complete = data[: end + 1] if end + 1 < len(data) else data
        if end + 1 < len(data):
            self._buffer += data[end + 1 :]
            self._check_size(len(self._buffer))
        lines = complete.split(b"\n")
        lines.pop()  # the empty tail after the last newline
        if len(complete) > self.max_package_size:
            for line in lines:
                self._check_size(len(line) + 1)
        try:
            return [line.decode().removesuffix("\r") for line in lines]
        except UnicodeDecodeError as exc:
            raise RemoteProtocolError(f"text line is not valid UTF-8 ({exc.reason})") from None

    def encode(self, message: Any) -> bytes:
        """The message as UTF-8 plus ``\\n``."""
        if type(message) is str:  # the common case, without to_bytes' checks
            return (message + "\n").encode()
        return to_bytes(message) + b"\n"

    @property
    def has_partial_message(self) -> bool:
        """True while an unfinished line is buffered."""
        return bool(self._buffer)
