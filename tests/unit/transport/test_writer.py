"""The send path: queueing past the kernel buffer, the queue limit, corking."""

from __future__ import annotations

import socket

import gevent

from geworker.errors import SendBufferFull


def test_send_queues_what_the_kernel_does_not_take(app):
    app.listen()
    conn, peer = app.connect(sndbuf=4096)
    payload = bytes(range(256)) * 4096  # 1 MiB, far more than the socket buffers
    assert conn.send_raw(payload) is True  # never blocks
    assert 0 < conn.send_queue_size < len(payload)
    assert conn.send_raw(b"tail") is True  # queued behind, in order
    assert peer.exactly(len(payload) + 4) == payload + b"tail"
    gevent.sleep(0.01)
    assert conn.send_queue_size == 0
    assert conn.bytes_written == len(payload) + 4


def test_queue_limit_drops_reports_and_signals_full_then_drain(app):
    app.listen(max_send_buffer_size=64 * 1024)
    conn, peer = app.connect(sndbuf=4096)
    big = b"x" * (256 * 1024)
    assert conn.send_raw(big) is True  # written in part, the rest queued past the limit
    assert app.events == [("full", conn.id)]
    assert conn.send_raw(b"dropped") is False
    [(conn_id, exc)] = app.errors
    assert conn_id == conn.id and isinstance(exc, SendBufferFull)
    assert peer.exactly(len(big)) == big  # the dropped message never arrives
    assert peer.nothing_within(0.05)
    gevent.sleep(0.01)
    assert app.events == [("full", conn.id), ("drain", conn.id)]
    assert conn.send_raw(b"again\n") is True
    assert peer.line() == b"again"


def test_answers_to_one_batch_are_written_together(app):
    # SOCK_SEQPACKET keeps the boundaries of each write: one recv, one write.
    app.listen().echo()
    _conn, peer = app.connect(kind=socket.SOCK_SEQPACKET)
    peer.send(b"a\nb\nc\n")  # one batch of three messages
    assert peer.sock.recv(1000) == b"a\nb\nc\n"
    for line in (b"d\n", b"e\n"):  # one message per batch: nothing to join
        peer.send(line)
        assert peer.sock.recv(1000) == line


def test_corked_answers_go_out_when_a_callback_blocks(app):
    app.listen()
    waited = []

    @app.server.on_message
    def on_message(conn, message):
        conn.send(message)
        if message == "slow":
            gevent.sleep(0.2)  # a callback that waits must not hold earlier answers
            waited.append(True)

    _conn, peer = app.connect(kind=socket.SOCK_SEQPACKET)
    peer.send(b"fast\nslow\nlast\n")
    assert peer.sock.recv(1000) == b"fast\nslow\n"  # out while "slow" still waits
    assert not waited
    assert peer.sock.recv(1000) == b"last\n"
