"""The read loop: messages in order, and fairness between connections."""

from __future__ import annotations

import socket
import time

import gevent


def test_messages_in_order_across_reads(app):
    app.listen().echo()
    conn, peer = app.connect()
    peer.send(b"one\ntw")
    assert peer.line() == b"one"
    peer.send(b"o\nthree\n")
    assert peer.line() == b"two" and peer.line() == b"three"
    assert conn.bytes_read == len(b"one\ntwo\nthree\n")


def test_a_flooding_peer_does_not_starve_another_connection(app):
    # Each SOCK_SEQPACKET record is one read and one message: the flooded
    # connection always finds data, and would never wait (so never yield)
    # until its whole backlog was handled, without the fairness slice.
    app.listen(park_after=None)
    backlog = 100
    handled = {"flood": 0}
    seen_at: list[int] = []
    other_peer = []

    @app.server.on_message
    def on_message(conn, message):
        if message == "flood":
            handled["flood"] += 1
            if handled["flood"] == 1:
                other_peer[0].send(b"ping\n")  # the other connection has input now
            deadline = time.perf_counter() + 0.0005
            while time.perf_counter() < deadline:  # a little CPU per message
                pass
        else:
            seen_at.append(handled["flood"])
            conn.send("pong")

    _flooded, flood_peer = app.connect(kind=socket.SOCK_SEQPACKET)
    _other, peer = app.connect(kind=socket.SOCK_SEQPACKET)
    other_peer.append(peer.sock)
    for _ in range(backlog):
        flood_peer.send(b"flood\n")
    assert peer.line() == b"pong"
    [at] = seen_at
    assert at < backlog // 2, f"served after {at} of {backlog} flooded messages"
    gevent.sleep(0.2)
    assert handled["flood"] == backlog
