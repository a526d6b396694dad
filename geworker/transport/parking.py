"""Parking: a connection silent for ``park_after`` gives up its greenlet until input comes.

A greenlet waiting in ``recv`` costs about 8 KB. The worker's sweep
(:func:`park_idle`, a loop timer) therefore looks at the connections that
have a greenlet (the *awake* registry) and, for each one that has waited for
input for ``park_after`` seconds with nothing in progress, throws
:class:`Parked` into its greenlet. The greenlet unwinds and ends, and the
connection (now ``PARKED``) waits on the socket's read watcher instead
(:func:`watch`). The first readable byte, EOF, or the end of
``idle_timeout`` runs :func:`wake` in the hub: a new greenlet carries on the
same read loop, and callbacks never notice. A new connection with nothing to
read yet parks as soon as ``on_connect`` (and any handshake) is done.

The read watcher is gevent's own (see :func:`._gevent.read_watcher`), and
gevent cancels whatever waits on it when the socket is shut down or closed.
So a connection never leaves ``PARKED`` with the watcher still started:
:meth:`Connection._transition <geworker.transport.connection.Connection._transition>`
stops it on every move out of ``PARKED``, and ``close``/``_shutdown`` wake a
parked connection before they shut its socket.
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import gevent

from ..stats import counters
from . import _gevent
from .state import ConnectionState

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Parked", "forget", "nothing_to_read", "park_idle", "register", "unwatch",
           "wake", "watch"]

_OPEN = ConnectionState.OPEN

#: Connections of this process that have a greenlet: what :func:`park_idle` looks at.
_awake: dict[int, Connection] = {}


class Parked(BaseException):
    """Thrown into a connection's greenlet waiting in ``recv``: end the greenlet, keep
    the connection (a BaseException, so that no ``except Exception`` stops it)."""


def register(conn: Connection) -> None:
    """``conn`` has a greenlet now: a candidate for the next sweeps."""
    _awake[conn.id] = conn


def forget(conn: Connection) -> None:
    """``conn`` parked, closed or was handed off: no sweep looks at it any more."""
    _awake.pop(conn.id, None)


def park_idle(limit: int) -> int:
    """Park up to ``limit`` connections silent for their ``park_after``; returns how many.

    Must run in the hub (a loop timer's callback): throwing into a waiting
    greenlet from there returns as soon as that greenlet has ended.
    """
    now = time.monotonic()
    parked = 0
    for conn in list(_awake.values()):
        if _sweep(conn, now):
            parked += 1
            if parked == limit:
                break
    return parked


def _sweep(conn: Connection, now: float) -> bool:
    """In the hub: park ``conn`` if it has waited for input for ``park_after``."""
    if not conn._in_recv or conn._state is not _OPEN:
        return False
    if conn.bytes_read != conn._idle_mark:
        conn._idle_mark, conn._idle_since = conn.bytes_read, now
        return False
    after = conn.listener.options.park_after
    if after is None or now - conn._idle_since < after or not conn._can_park():
        return False
    if not _gevent.read_watcher(conn.socket).active:
        return False  # waiting for something else than input (a TLS write)
    reader = conn._reader
    assert reader is not None  # (_can_park checked it)
    reader.throw(Parked)  # it unwinds, runs watch() and ends; then we are back
    return True


def nothing_to_read(conn: Connection) -> bool:
    """True when the first read would wait and the connection may park instead."""
    if conn.listener.options.park_after is None or not conn._can_park():
        return False
    try:
        _gevent.os_socket(conn.socket).recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    except OSError:
        pass  # the read loop sees the error
    return False  # data or EOF: read it now


def watch(conn: Connection) -> None:
    """Parked now: wait for input (or ``idle_timeout``) on the socket's read watcher."""
    conn._in_recv = False
    forget(conn)
    counters.connections_parked += 1
    sock = conn.socket
    _gevent.read_watcher(sock).start(wake, conn, False)
    timeout = sock.gettimeout()
    if timeout is not None:
        left = max(0.0, timeout - (time.monotonic() - conn._idle_since))
        timer = conn._park_timer = gevent.get_hub().loop.timer(left)
        timer.start(wake, conn, True)


def unwatch(conn: Connection) -> None:
    """Leaving ``PARKED`` (any way): stop the read watcher and the idle timer."""
    counters.connections_parked -= 1
    _gevent.read_watcher(conn.socket).stop()
    timer, conn._park_timer = conn._park_timer, None
    if timer is not None:
        timer.close()


def wake(conn: Connection, timed_out: bool = False) -> None:
    """Input arrived, ``idle_timeout`` passed, or the connection must close: serve it
    again in a new greenlet (from the hub, or from any greenlet)."""
    if not conn._transition(_OPEN):  # (stops the watcher)
        return
    register(conn)
    conn._idle_mark = -1
    spawn: Any = conn._runtime.spawn or gevent.spawn
    spawn(conn._run, conn._idle_then_read if timed_out else conn._read_loop)
