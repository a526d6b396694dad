"""Parking: a silent connection gives up its greenlet and is served again on input."""

from __future__ import annotations

import gevent
import pytest

from geworker import ConnectionState
from geworker.stats import counters
from unit.transport.conftest import park, sweep


@pytest.fixture
def parked(app):
    """An echo connection that went silent after one message and parked."""
    app.listen(park_after=0.05).echo()
    conn, peer = app.connect()
    peer.send(b"hi\n")
    assert peer.line() == b"hi"
    park(conn, 0.05)
    return conn, peer


def test_a_new_silent_connection_parks_at_once(app):
    app.listen(park_after=0.05).echo()
    before = counters.connections_parked
    conn, peer = app.connect()
    assert conn.is_parked and conn.state is ConnectionState.PARKED
    assert conn._reader is None and app.greenlets[-1].dead  # no greenlet while parked
    assert counters.connections_parked == before + 1
    peer.send(b"hello\n")
    assert peer.line() == b"hello"
    assert conn.state is ConnectionState.OPEN and counters.connections_parked == before


def test_parks_after_park_after_and_serves_again(parked, app):
    conn, peer = parked
    assert conn.state is ConnectionState.PARKED and conn._reader is None
    assert sweep() == 0  # parked ones are not swept again
    peer.send(b"p1\np2\n")
    assert peer.line() == b"p1" and peer.line() == b"p2"
    assert conn.state is ConnectionState.OPEN
    park(conn, 0.05)  # and parks again
    assert app.closes(conn) == 0


def test_a_busy_connection_does_not_park(app):
    app.listen(park_after=0.01)
    release = gevent.event.Event()

    @app.server.on_message
    def on_message(conn, message):
        release.wait()
        conn.send("done")

    conn, peer = app.connect()
    peer.send(b"work\n")
    gevent.sleep(0.01)
    for _ in range(3):
        sweep()
        gevent.sleep(0.02)
    assert conn.state is ConnectionState.OPEN and conn.is_busy
    release.set()
    assert peer.line() == b"done"


def test_sends_to_a_parked_connection_go_out(parked):
    conn, peer = parked
    assert conn.state.is_open and conn.send("pushed") is True
    assert peer.line() == b"pushed"
    assert conn.is_parked  # sending does not wake it


def test_closing_a_parked_connection(parked, app, capsys):
    conn, peer = parked
    gevent.spawn(conn.close, "bye").join()
    assert peer.line() == b"bye"
    assert peer.eof()
    assert app.closed.wait(1)
    gevent.sleep(0.01)
    assert conn.state is ConnectionState.CLOSED and app.closes(conn) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "AttributeError" not in err, err


def test_draining_a_parked_connection(parked, app, capsys):
    conn, peer = parked
    conn.created -= 10  # past the first-message grace
    conn.drain()  # what the worker does on HUP and TERM
    assert peer.eof()
    assert app.closed.wait(1)
    gevent.sleep(0.01)
    assert app.closes(conn) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and "AttributeError" not in err, err


def test_peer_closing_a_parked_connection(parked, app):
    conn, peer = parked
    peer.sock.close()
    assert app.closed.wait(1)
    gevent.sleep(0.01)
    assert app.closes(conn) == 1 and not conn.is_parked


def test_abort_ends_a_parked_connection_here(parked, app):
    conn, peer = parked
    before = counters.connections_parked
    conn.abort()
    assert conn.state is ConnectionState.CLOSED and app.closes(conn) == 1
    assert counters.connections_parked == before - 1
    assert peer.eof()


def test_idle_timeout_holds_while_parked(app):
    app.listen(park_after=0.01, idle_timeout=0.2).echo()
    conn, peer = app.connect()
    assert conn.is_parked
    assert peer.eof(timeout=1)
    assert app.closes(conn) == 1
