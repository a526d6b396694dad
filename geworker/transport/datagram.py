"""UDP: one message per datagram (or several, with a framing protocol)."""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING, Any

from gevent.server import DatagramServer

from ..errors import RemoteProtocolError
from ..stats import counters
from . import _gevent
from .connection import report_callback_failure

if TYPE_CHECKING:
    from ..listener import Listener
    from ..server import Server

__all__ = ["MAX_DATAGRAM_SIZE", "DatagramConnection", "DatagramListener", "decode_datagram"]

MAX_DATAGRAM_SIZE = 65535
_ids = itertools.count(1)


def decode_datagram(protocol: Any, data: bytes) -> list[Any]:
    """The messages of one datagram, decoded by ``protocol`` (a fresh one per datagram).

    Raises:
        RemoteProtocolError: when it is malformed or ends inside a message.
    """
    messages = protocol.receive_data(data) if data else [b""]
    if protocol.has_partial_message:
        raise RemoteProtocolError("datagram ends inside a message")
    return messages


class DatagramConnection:
    """The sender of one datagram, as seen by ``on_message``.

    There is no connection on UDP: ``on_connect`` and ``on_close`` never run,
    and :meth:`close` only sends. The object has the same ``send``/``close``
    shape as :class:`~geworker.transport.connection.Connection`, so business code does
    not change when a listener moves from ``tcp://`` to ``udp://``.
    """

    __slots__ = (
        "_socket",
        "context",
        "id",
        "listener",
        "protocol",
        "remote_address",
        "server",
    )

    def __init__(self, sock: Any, remote_address: Any, listener: Listener,
                 server: Server, protocol: Any) -> None:
        self.id = next(_ids)
        self._socket = sock
        self.listener = listener
        self.server = server
        self.protocol = protocol
        self.remote_address = remote_address
        self.context: dict[str, Any] = {}

    def send(self, message: Any) -> bool:
        """Send ``message`` to the peer in one datagram; False if that failed."""
        return self.send_raw(self.protocol.encode(message))

    def send_raw(self, data: bytes) -> bool:
        """Send bytes as they are, in one datagram."""
        try:
            self._socket.sendto(data, self.remote_address)
        except OSError:
            counters.send_failures += 1
            return False
        counters.messages_out += 1
        counters.bytes_out += len(data)
        return True

    def close(self, message: Any = None) -> None:
        """Send ``message`` if given; there is nothing else to close."""
        if message is not None:
            self.send(message)

    def __repr__(self) -> str:
        return f"<geworker.DatagramConnection {self.listener.url} from {self.remote_address}>"


class DatagramListener(DatagramServer):  # type: ignore[misc]
    """A gevent ``DatagramServer`` that reads whole datagrams (up to 65,535 bytes)
    and hands their messages to the server's ``on_message``."""

    def __init__(self, sock: Any, listener: Listener, server: Server, spawn: Any,
                 log: Any = None) -> None:
        super().__init__(sock, spawn=spawn)
        self.listener = listener
        self.geworker_server = server
        self.log = log or logging.getLogger("geworker")

    def stop_reading(self) -> None:
        """Stop reading datagrams, but keep the socket open (unlike ``close()``).

        The worker calls this when it drains: handlers already running still
        send their replies; the socket closes with the process.
        """
        _gevent.stop_datagram_reads(self)  # keeps a freed pool slot from resuming reads
        self.stop_accepting()

    def do_read(self) -> tuple[bytes, Any] | None:
        """Read one datagram without truncating it (gevent's default reads 8 KiB)."""
        try:
            return _gevent.datagram_os_socket(self).recvfrom(  # type: ignore[no-any-return]
                MAX_DATAGRAM_SIZE)
        except BlockingIOError:
            return None

    def handle(self, data: bytes, address: Any) -> None:  # type: ignore[override]
        """Decode one datagram and call ``on_message`` for each message in it."""
        listener = self.listener
        counters.datagrams_in += 1
        counters.bytes_in += len(data)
        protocol = listener.protocol.for_listener(listener.options)
        try:
            messages = decode_datagram(protocol, data)
        except RemoteProtocolError as exc:
            counters.errors[type(exc).__name__] += 1
            self.log.warning("geworker: dropped a %d-byte datagram from %s on %s: %s",
                             len(data), address, listener.url, exc.reason)
            return
        on_message = self.geworker_server.callbacks.get("on_message")
        if on_message is None:
            return
        conn = DatagramConnection(self.socket, address, listener, self.geworker_server, protocol)
        counters.messages_in += len(messages)
        for message in messages:
            try:
                on_message(conn, message)
            except Exception as exc:
                report_callback_failure(self.log, self.geworker_server.callbacks, conn,
                                        "on_message", exc, f"a datagram from {address}")
                return
