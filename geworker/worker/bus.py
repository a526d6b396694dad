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


def encode(message: Any) -> bytes:
    """A ``str`` or bytes-like message as one bus datagram."""
    if isinstance(message, str):
        data = _TEXT + message.encode()
    elif isinstance(message, (bytes, bytearray, memoryview)):
        data = _BYTES + bytes(message)
    else:
        raise LocalProtocolError(
            f"a broadcast to all workers carries str or bytes, not {type(message).__name__}")
    if len(data) > MAX_BUS_MESSAGE:
        raise LocalProtocolError(
            f"a broadcast to all workers carries at most {MAX_BUS_MESSAGE} bytes")
    return data


def decode(data: bytes) -> Any:
    """The message carried by a bus datagram."""
    return data[1:].decode() if data[:1] == _TEXT else data[1:]


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
        """Bind this worker's address and hand every message received to ``deliver``."""
        import gevent
        import gevent.socket

        sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(self.address(self.generation, self.index))
        self.socket = sock

        def read() -> None:
            while True:
                try:
                    data = sock.recv(MAX_BUS_MESSAGE + 1)
                except OSError:
                    return
                try:
                    deliver(decode(data))
                except Exception:
                    self.log.exception("geworker: delivering a broadcast from another worker")

        gevent.spawn(read)

    def publish(self, message: Any, generations: set[int]) -> int:
        """Send ``message`` to every other worker of ``generations``; returns how many took it."""
        if self.socket is None:
            return 0
        data = encode(message)
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
