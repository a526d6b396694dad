"""A stream connection served in this process over ``gevent.socket.socketpair()``.

No gunicorn and no monkey patching: the connection's greenlet and the test
share gevent's hub, the test drives the peer's end of the pair with gevent
sockets, and waits with ``gevent.sleep``/events. Every test is bounded by a
``gevent.Timeout``.
"""

from __future__ import annotations

import socket
from typing import Any

import gevent
import gevent.event
import gevent.socket
import pytest

from geworker import Server
from geworker.transport.connection import Connection
from geworker.transport.parking import park_idle

BOUND = 5.0  # seconds any one test may take


class Peer:
    """The client's end of a socketpair (a gevent socket)."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.buffer = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self, timeout: float = 2.0) -> bytes:
        """The next line, without its ``\\n``."""
        with gevent.Timeout(timeout):
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                assert chunk, f"EOF before a complete line (have {self.buffer!r})"
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def exactly(self, size: int, timeout: float = 2.0) -> bytes:
        with gevent.Timeout(timeout):
            while len(self.buffer) < size:
                chunk = self.sock.recv(1 << 20)
                assert chunk, f"EOF after {len(self.buffer)} of {size} bytes"
                self.buffer += chunk
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def eof(self, timeout: float = 2.0) -> bool:
        """True once the connection closed its end (after any bytes still buffered)."""
        with gevent.Timeout(timeout, False):
            while True:
                try:
                    chunk = self.sock.recv(65536)
                except ConnectionResetError:
                    return True
                if not chunk:
                    return True
                self.buffer += chunk
        return False

    def nothing_within(self, seconds: float) -> bool:
        """True if no byte arrives for ``seconds``."""
        with gevent.Timeout(seconds, False):
            chunk = self.sock.recv(65536)
            self.buffer += chunk
            return False
        return True


class App:
    """A Server with one ``text://`` listener, and its connections over socketpairs.

    ``events`` records ``(callback, conn.id)`` for on_close, on_buffer_full,
    on_buffer_drain; ``errors`` records ``(conn.id, exception)`` from on_error.
    """

    def __init__(self) -> None:
        self.server = Server(name="unit")
        self.events: list[tuple[str, int]] = []
        self.errors: list[tuple[int, Exception]] = []
        self.greenlets: list[gevent.Greenlet] = []
        self.sockets: list[Any] = []
        self.closed = gevent.event.Event()
        self.listener: Any = None

        @self.server.on_close
        def on_close(conn: Connection) -> None:
            self.events.append(("close", conn.id))
            self.closed.set()

        @self.server.on_error
        def on_error(conn: Connection, exc: Exception) -> None:
            self.errors.append((conn.id, exc))

        @self.server.on_buffer_full
        def on_buffer_full(conn: Connection) -> None:
            self.events.append(("full", conn.id))

        @self.server.on_buffer_drain
        def on_buffer_drain(conn: Connection) -> None:
            self.events.append(("drain", conn.id))

    def listen(self, **options: Any) -> App:
        self.listener = self.server.listen("text://127.0.0.1:0", **options)
        return self

    def echo(self) -> App:
        @self.server.on_message
        def on_message(conn: Connection, message: str) -> None:
            conn.send(message)

        return self

    def connect(self, kind: int = socket.SOCK_STREAM, sndbuf: int | None = None,
                start: bool = True) -> tuple[Connection, Peer]:
        """A connection (served in a new greenlet unless ``start`` is False) and its peer."""
        if self.listener is None:
            self.listen()
        ours, theirs = gevent.socket.socketpair(socket.AF_UNIX, kind)
        self.sockets += [ours, theirs]
        if sndbuf is not None:
            ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
        conn = self.listener.connection_class(ours, "peer", self.listener, self.server)
        if start:
            self.greenlets.append(gevent.spawn(conn.serve))
            gevent.sleep(0.001)  # let it reach its first read (or park)
        return conn, Peer(theirs)

    def closes(self, conn: Connection) -> int:
        return self.events.count(("close", conn.id))

    def shutdown(self) -> None:
        for conn in list(self.server.connections.values()):
            conn.abort()
        gevent.killall(self.greenlets, timeout=1)
        for sock in self.sockets:
            sock.close()


def sweep(limit: int = 100) -> int:
    """Run the worker's parking sweep once, in the hub as the worker does."""
    result = gevent.event.AsyncResult()
    gevent.get_hub().loop.run_callback(lambda: result.set(park_idle(limit)))
    return int(result.get(timeout=1))


def park(conn: Connection, after: float) -> None:
    """Sweep until ``conn`` parks (it must be silent, with ``park_after=after``)."""
    for _ in range(50):
        sweep()
        if conn.is_parked:
            return
        gevent.sleep(after)
    raise AssertionError(f"{conn!r} did not park")


@pytest.fixture(autouse=True)
def bounded():
    """Each test of this directory ends within BOUND seconds."""
    with gevent.Timeout(BOUND):
        yield


@pytest.fixture
def app():
    """An :class:`App`; whatever it left open is closed afterwards."""
    application = App()
    yield application
    application.shutdown()
