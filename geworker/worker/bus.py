"""Messages between the workers of one gunicorn instance: broadcasts to every connection.

Each worker binds a unix datagram socket in Linux's abstract namespace, named
after the master's pid, the worker's reload generation and its index (so old
and new workers never collide during a reload, and nothing is left on disk).
``Server.broadcast(message, all_workers=True)`` sends the message to its own
connections and one datagram to each peer, whose reader greenlet broadcasts
it to theirs. Delivery is best effort, like the rest of a broadcast: a
worker that is starting or stopping may miss one.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

from ..errors import LocalProtocolError
from ..stats import counters

__all__ = ["MAX_BUS_MESSAGE", "WorkerBus"]

#: Largest message a cross-worker broadcast carries (a unix datagram, with headroom).
MAX_BUS_MESSAGE = 128 * 1024
#: Indexes tried past the configured worker count, for workers added with TTIN.
EXTRA_INDEXES = 8

_TEXT, _BYTES = b"s", b"b"


def encode(message: Any, channel: int = 0) -> bytes:
    """A ``str`` or bytes-like message as one bus datagram for server ``channel`` (0-255)."""
    head = bytes((channel,))
    if isinstance(message, str):
        data = head + _TEXT + message.encode()
    elif isinstance(message, (bytes, bytearray, memoryview)):
        data = head + _BYTES + bytes(message)
    else:
        raise LocalProtocolError(
            f"a broadcast to all workers carries str or bytes, not {type(message).__name__}")
    if len(data) > MAX_BUS_MESSAGE + 1:
        raise LocalProtocolError(
            f"a broadcast to all workers carries at most {MAX_BUS_MESSAGE} bytes")
    return data


def decode(data: bytes) -> tuple[int, Any]:
    """``(channel, message)`` of a bus datagram."""
    payload = data[2:]
    return data[0], payload.decode() if data[1:2] == _TEXT else payload


class WorkerBus:
    """One worker's end of the bus (see the module doc)."""

    def __init__(self, instance: int, generation: int, index: int, workers: int,
                 log: Any = None) -> None:
        self.instance = instance
        self.generation = generation
        self.index = index
        self.workers = workers
        self.log = log or logging.getLogger("geworker")
        self.socket: Any = None
        # Sends never wait: a peer that is stuck must not stall the broadcaster.
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)

    def address(self, generation: int, index: int) -> bytes:
        """The abstract socket name of worker ``index`` of ``generation``."""
        return f"\0geworker-bus-{self.instance}-{generation}-{index}".encode()

    def start(self, deliver: Any) -> None:
        """Bind this worker's address and call ``deliver(channel, message)`` for each message."""
        import gevent
        import gevent.socket

        sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self.address(self.generation, self.index))
        self.socket = sock

        def read() -> None:
            while True:
                try:
                    data = sock.recv(MAX_BUS_MESSAGE + 2)
                except OSError:
                    return
                try:
                    deliver(*decode(data))
                except Exception:
                    self.log.exception("geworker: delivering a broadcast from another worker")

        gevent.spawn(read)

    def publish(self, message: Any, generations: set[int], channel: int = 0) -> int:
        """Send ``message`` for server ``channel`` to every other worker of ``generations``.

        Returns how many workers took it.
        """
        if self.socket is None:
            return 0
        data = encode(message, channel)
        reached = 0
        for generation in generations:
            for index in range(self.workers + EXTRA_INDEXES):
                if generation == self.generation and index == self.index:
                    continue
                try:
                    self._sender.sendto(data, self.address(generation, index))
                    reached += 1
                except (ConnectionRefusedError, FileNotFoundError):
                    continue  # no worker there
                except OSError as exc:  # BlockingIOError: the peer's queue is full
                    counters.send_failures += 1
                    self.log.warning("geworker: broadcast to worker %s failed: %s", index, exc)
        return reached

    def close(self) -> None:
        """Stop receiving (the reader greenlet ends)."""
        if self.socket is not None:
            self.socket.close()
            self.socket = None
        self._sender.close()
