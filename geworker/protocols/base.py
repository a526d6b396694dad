"""The sans-IO protocol interface every listener protocol implements.

A protocol turns received bytes into complete messages and outgoing messages
into bytes. It owns no socket and imports no gevent: the transport loop in
:mod:`geworker.transport.connection` reads, feeds :meth:`Protocol.receive_data`,
dispatches the messages to ``on_message`` and writes what the protocol asks
for. Tests drive protocols by pushing bytes, with no socket at all.

One protocol instance serves one stream connection. On datagram transports a
fresh instance reads each datagram, which must hold only whole messages.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import LocalProtocolError, MessageTooLarge
from ..settings import MiB

if TYPE_CHECKING:
    from ..settings import Options

__all__ = ["Protocol", "to_bytes"]


def to_bytes(message: Any) -> bytes:
    """Encode ``str`` as UTF-8 and pass byte-like objects through.

    Raises:
        LocalProtocolError: for any other type.
    """
    if isinstance(message, bytes):
        return message
    if isinstance(message, str):
        return message.encode()
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    raise LocalProtocolError(
        f"cannot send a {type(message).__name__}: this protocol carries str or bytes"
    )


class Protocol:
    """Base class of listener protocols (bytes in, messages out).

    Subclasses override :meth:`receive_data` and :meth:`encode`; the rest has
    sensible defaults. Register a subclass under a URL scheme with
    :func:`geworker.register_protocol` to use it as ``scheme://host:port``.

    Attributes:
        max_package_size: the largest message accepted from the peer, in bytes.
        closed: set by the protocol when the connection must be closed once
            :meth:`data_to_send` has been flushed (for example after an error
            answer).
    """

    #: Transport used when the URL scheme alone names this protocol.
    default_transport: ClassVar[str] = "tcp"

    # Slots keep the per-connection cost down; subclasses without __slots__ get a dict.
    __slots__ = ("closed", "max_package_size")

    def __init__(self, max_package_size: int = 10 * MiB) -> None:
        self.max_package_size = max_package_size
        self.closed = False

    @classmethod
    def for_listener(cls, options: Options) -> Protocol:
        """Create the protocol instance for one connection of a listener.

        Override to read more of the listener's options than ``max_package_size``.
        """
        return cls(options.max_package_size)

    def receive_data(self, data: bytes) -> list[Any]:
        """Feed bytes from the peer; return the messages they complete, in order.

        ``data`` is never empty. Raises :class:`~geworker.errors.RemoteProtocolError`
        (or its subclass :class:`~geworker.errors.MessageTooLarge`) when the
        peer breaks the protocol; the connection is then closed.
        """
        raise NotImplementedError

    def encode(self, message: Any) -> bytes:
        """Turn one outgoing message into the bytes to write.

        Raises:
            LocalProtocolError: when ``message`` cannot be carried.
        """
        raise NotImplementedError

    def data_to_send(self) -> bytes:
        """Bytes the protocol produced by itself (handshakes, pongs, error answers).

        The transport loop calls this after each :meth:`receive_data` and
        writes the result before dispatching messages.
        """
        return b""

    def going_away(self) -> bytes:
        """The drain step: bytes to send before the server closes an idle connection.

        Called when the worker stops or reloads; a WebSocket answers a 1001
        close frame here. Plain framings have nothing to say.
        """
        return b""

    @property
    def has_partial_message(self) -> bool:
        """True while part of a message has been received but not completed."""
        return False

    def _check_size(self, size: int) -> None:
        if size > self.max_package_size:
            raise MessageTooLarge(
                f"message of {size} bytes exceeds max_package_size={self.max_package_size}"
            )
