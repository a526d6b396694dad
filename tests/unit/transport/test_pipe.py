"""``conn.pipe(dest)``: forwarding with flow control, in this process (gevent, no patching)."""

from __future__ import annotations

import hashlib
import os

import gevent
import gevent.event
import pytest
from gevent.server import StreamServer

import geworker
from geworker.stats import counters
from geworker.transport.client import open_clients
from geworker.transport.connection import RECV_SIZE


class Server:
    """A StreamServer in this process running ``handle(sock)`` for each connection."""

    def __init__(self, handle) -> None:
        self.handle = handle
        self.done = gevent.event.Event()
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.server.start()
        self.port = self.server.address[1]

    def _handle(self, sock, address) -> None:
        try:
            self.handle(sock)
        finally:
            sock.close()
            self.done.set()

    def close(self) -> None:
        self.server.close()


@pytest.fixture(autouse=True)
def no_client_left():
    yield
    for conn in open_clients():
        conn.close()


def read_all(sock) -> bytes:
    chunks = []
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def test_a_slow_destination_pauses_the_source_and_nothing_is_lost():
    payload = os.urandom(32 * 1024 * 1024)  # more than the kernel buffers hold
    limit = 64 * 1024
    go = gevent.event.Event()
    received = {}

    def source(sock):  # sends everything, as fast as the pipe lets it
        sock.sendall(payload)

    def sink(sock):  # reads nothing until told, then everything
        go.wait()
        received["data"] = read_all(sock)

    src, dst = Server(source), Server(sink)
    try:
        a = geworker.connect(f"tcp://127.0.0.1:{src.port}")
        b = geworker.connect(f"tcp://127.0.0.1:{dst.port}", max_send_buffer_size=limit)
        a.pipe(b)  # (b is still connecting: a waits for it)
        b.wait_connected(2)
        gevent.sleep(0.5)
        assert a.is_recv_paused  # held back, not buffering
        assert b.send_queue_size <= limit + RECV_SIZE
        assert not src.done.is_set()  # the source's sendall is blocked by TCP
        failures = counters.send_failures
        go.set()
        assert dst.done.wait(8)
        assert hashlib.sha256(received["data"]).digest() == hashlib.sha256(payload).digest()
        assert counters.send_failures == failures
        # the source closed after sending: a closed, then b after flushing
        assert a.wait_closed(1) and b.wait_closed(1)
        assert a.connects == b.connects == 1
    finally:
        src.close()
        dst.close()


def test_messages_of_a_batch_are_held_when_the_destination_fills_up():
    # text:// gives many messages per read: those after the queue filled up are held
    # by the pipe (not dropped by send), then sent in order once it drains.
    lines = [f"line {i:06d} " + "x" * 200 for i in range(20_000)]
    go = gevent.event.Event()
    received = {}

    def source(sock):
        sock.sendall("".join(line + "\n" for line in lines).encode())

    def sink(sock):
        go.wait()
        received["data"] = read_all(sock)

    src, dst = Server(source), Server(sink)
    try:
        a = geworker.connect(f"text://127.0.0.1:{src.port}", blocking=True)
        b = geworker.connect(f"text://127.0.0.1:{dst.port}", blocking=True,
                             max_send_buffer_size=16 * 1024)
        failures = counters.send_failures
        a.pipe(b)
        gevent.sleep(0.3)
        assert a.is_recv_paused
        go.set()
        assert dst.done.wait(4)
        assert received["data"].decode().splitlines() == lines
        assert counters.send_failures == failures  # nothing dropped
    finally:
        src.close()
        dst.close()


def test_a_destination_that_never_opens_closes_the_source():
    closed = gevent.event.Event()
    src = Server(lambda sock: read_all(sock))
    try:
        a = geworker.connect(f"tcp://127.0.0.1:{src.port}", blocking=True,
                             on_close=lambda c: closed.set())
        with __import__("socket").socket() as s:  # a port nobody listens on
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        b = geworker.connect(f"tcp://127.0.0.1:{port}", on_error=lambda c, e: None)
        a.pipe(b)
        assert a.is_recv_paused
        assert closed.wait(2)
        assert src.done.wait(2)  # the source's server saw it close
    finally:
        src.close()


def test_closing_the_destination_closes_the_source_and_a_piped_client_does_not_reconnect():
    src = Server(lambda sock: read_all(sock))
    dst = Server(lambda sock: read_all(sock))
    try:
        a = geworker.connect(f"tcp://127.0.0.1:{src.port}", blocking=True, reconnect=True)
        b = geworker.connect(f"tcp://127.0.0.1:{dst.port}", blocking=True, reconnect=True)
        a.pipe(b)
        b.pipe(a)
        b.close()
        assert a.wait_closed(2) and b.wait_closed(2)
        gevent.sleep(0.7)  # past the first reconnect delay
        assert a.connects == 1 and not a.reconnect_pending
    finally:
        src.close()
        dst.close()


def test_a_proxy_in_this_process(app):
    # A served connection (over a socketpair) piped both ways to a client of an echo server.
    def echo(sock):
        while True:
            data = sock.recv(65536)
            if not data:
                return
            sock.sendall(data)

    upstream = Server(echo)
    try:
        app.listener = app.server.listen("tcp://127.0.0.1:0")
        closes = []
        app.server.on_close = lambda c: closes.append(c.id)

        @app.server.on_connect
        def proxy(conn):
            client = geworker.connect(f"tcp://127.0.0.1:{upstream.port}")
            conn.pipe(client)
            client.pipe(conn)

        conn, peer = app.connect()
        payload = os.urandom(2 * 1024 * 1024)
        sender = gevent.spawn(peer.sock.sendall, payload)
        assert peer.exactly(len(payload), timeout=4) == payload
        sender.get(timeout=1)
        peer.sock.close()  # the client goes: the proxy closes upstream too
        assert upstream.done.wait(2)
        gevent.sleep(0.05)
        assert closes == [conn.id]
        assert not open_clients()
    finally:
        upstream.close()
