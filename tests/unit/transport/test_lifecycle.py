"""The lifecycle: the transition table, close-once, hand-off, pause/resume."""

from __future__ import annotations

import gevent
import pytest

from geworker import ConnectionState
from geworker.transport.state import TRANSITIONS


def test_the_table_allows_no_way_back():
    assert TRANSITIONS[ConnectionState.CLOSED] == frozenset()
    assert TRANSITIONS[ConnectionState.HANDED_OFF] == frozenset()
    assert TRANSITIONS[ConnectionState.CLOSING] == {ConnectionState.CLOSED}
    # CLOSED (and so on_close) is reached only through CLOSING
    assert [s for s, moves in TRANSITIONS.items() if ConnectionState.CLOSED in moves] == [
        ConnectionState.CLOSING]
    assert {s for s in ConnectionState if s.is_open} == {ConnectionState.OPEN,
                                                         ConnectionState.PARKED}
    assert [s.value for s in (ConnectionState.OPEN, ConnectionState.CLOSING,
                              ConnectionState.CLOSED)] == ["ESTABLISHED", "CLOSING", "CLOSED"]


def test_state_is_read_only_and_illegal_moves_are_refused(app):
    app.listen(park_after=None).echo()
    conn, peer = app.connect()
    with pytest.raises(AttributeError):
        conn.state = ConnectionState.CLOSED
    assert conn._transition(ConnectionState.CLOSED) is False  # not from OPEN
    assert conn.state is ConnectionState.OPEN
    conn.close()
    assert peer.eof()
    gevent.sleep(0.01)
    assert conn.state is ConnectionState.CLOSED
    for state in ConnectionState:
        assert conn._transition(state) is False
    assert app.closes(conn) == 1


def test_close_from_another_greenlet_runs_on_close_once(app):
    app.listen().echo()
    conn, peer = app.connect()
    peer.send(b"hi\n")
    assert peer.line() == b"hi"
    closers = [gevent.spawn(conn.close, "bye") for _ in range(3)]
    gevent.joinall(closers)
    assert peer.line() == b"bye"  # once: the later close() calls do nothing
    assert peer.eof()
    app.closed.wait(1)
    gevent.sleep(0.01)
    assert conn.state is ConnectionState.CLOSED and conn.id not in app.server.connections
    conn._finish()  # a second finish (e.g. a late abort) does not run on_close again
    conn.abort()
    assert app.closes(conn) == 1
    assert conn.send("late") is False and conn.send_raw(b"late") is False


def test_peer_eof_runs_on_close_once(app):
    app.listen().echo()
    conn, peer = app.connect()
    peer.send(b"hi\n")
    assert peer.line() == b"hi"
    peer.sock.close()
    assert app.closed.wait(1)
    gevent.sleep(0.01)
    assert app.closes(conn) == 1 and conn.state is ConnectionState.CLOSED


def test_on_close_raising_is_reported_once(app):
    app.listen().echo()

    @app.server.on_close
    def on_close(conn):
        app.events.append(("close", conn.id))
        raise RuntimeError("on_close failed")

    conn, peer = app.connect()
    peer.sock.close()
    gevent.sleep(0.05)
    assert app.closes(conn) == 1
    [(conn_id, exc)] = app.errors
    assert conn_id == conn.id and str(exc) == "on_close failed"


def test_hand_off_never_runs_on_close_for_the_old_connection(app):
    app.listen(park_after=None)  # the new connection reads in the old one's greenlet
    handed = []

    @app.server.on_message
    def on_message(conn, message):
        if message == "upgrade" and not handed:
            new = type(conn)(conn.socket, conn.remote_address, conn.listener, conn.server)
            handed.append((conn, new))
            conn.hand_off()
            new.send("upgraded")
            new.serve()  # in this greenlet, as upgrade_from_http does
        else:
            conn.send(f"{conn.id}:{message}")

    old_conn, peer = app.connect()
    peer.send(b"upgrade\n")
    assert peer.line() == b"upgraded"
    [(old, new)] = handed
    assert old is old_conn and old.state is ConnectionState.HANDED_OFF
    assert list(app.server.connections) == [new.id]
    assert old.send("x") is False and old.send_raw(b"x") is False
    peer.send(b"hello\n")
    assert peer.line() == f"{new.id}:hello".encode()
    peer.sock.close()
    assert app.closed.wait(1)
    gevent.sleep(0.02)
    assert app.events == [("close", new.id)]
    assert old.state is ConnectionState.HANDED_OFF and new.state is ConnectionState.CLOSED


def test_pause_and_resume_recv(app):
    app.listen()
    received = []

    @app.server.on_message
    def on_message(conn, message):
        received.append(message)
        if message == "pause":
            conn.pause_recv()

    conn, peer = app.connect()
    peer.send(b"pause\n")
    gevent.sleep(0.01)
    assert conn.is_recv_paused
    peer.send(b"after\n")
    gevent.sleep(0.05)
    assert received == ["pause"]  # not read while paused
    conn.resume_recv()
    gevent.sleep(0.01)
    assert received == ["pause", "after"] and not conn.is_recv_paused


def test_close_wakes_a_paused_reader(app):
    app.listen()

    @app.server.on_message
    def on_message(conn, message):
        conn.pause_recv()

    conn, peer = app.connect()
    peer.send(b"x\n")
    gevent.sleep(0.01)
    conn.close()
    assert peer.eof()
    assert app.closed.wait(1)
    assert app.closes(conn) == 1
