"""Heartbeats: close peers that went silent, and ping the ones that need it.

One timer per distinct ``heartbeat_interval`` in a worker, not one per
connection. At each tick every connection of that interval is checked:
received anything since the last tick (its ``bytes_read`` moved) resets its
miss count; otherwise it counts a miss, and at ``heartbeat_missed_limit``
misses it is closed (:meth:`Connection._heartbeat_missed`). Connections that
are still alive are sent the ping (:meth:`Connection._heartbeat_ping`:
``heartbeat_data`` through the protocol, a ping frame on WebSocket). A
parked connection stays parked: the check reads two integers, and a ping is
written straight to the socket.

A silent peer is closed between ``(limit - 1) x interval`` and ``limit x
interval`` seconds after its last byte (it may have sent just after a tick),
plus the time to run the tick.
"""

from __future__ import annotations

import contextlib
import socket
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["apply_socket_options", "forget", "watch"]

#: interval -> (the timer, the connections it checks by id)
_buckets: dict[float, tuple[Any, dict[int, Connection]]] = {}


def watch(conn: Connection) -> None:
    """Check ``conn`` at every tick of its listener's ``heartbeat_interval``."""
    interval = conn.listener.options.heartbeat_interval
    if interval is None:
        return
    bucket = _buckets.get(interval)
    if bucket is None:
        import gevent

        timer = gevent.get_hub().loop.timer(interval, interval)
        bucket = _buckets[interval] = (timer, {})
        timer.start(_tick, bucket[1])
    conn._hb_mark, conn._hb_missed = conn.bytes_read, 0
    bucket[1][conn.id] = conn


def forget(conn: Connection) -> None:
    """Stop checking ``conn`` (it closed)."""
    interval = conn.listener.options.heartbeat_interval
    bucket = _buckets.get(interval) if interval is not None else None
    if bucket is not None:
        bucket[1].pop(conn.id, None)


def _tick(conns: dict[int, Connection]) -> None:
    for conn in list(conns.values()):
        read = conn.bytes_read
        if read != conn._hb_mark or conn._busy:  # a busy callback is not silence
            conn._hb_mark, conn._hb_missed = read, 0
        else:
            conn._hb_missed += 1
            if conn._hb_missed >= conn.listener.options.heartbeat_missed_limit:
                conns.pop(conn.id, None)
                with contextlib.suppress(Exception):
                    conn._heartbeat_missed()
                continue
        with contextlib.suppress(Exception):
            conn._heartbeat_ping()


def apply_socket_options(sock: Any, options: Any, tcp: bool) -> None:
    """Set ``socket_send_buffer`` and (TCP) ``tcp_keepalive``, ``tcp_user_timeout``."""
    with contextlib.suppress(OSError):
        if options.socket_send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, options.socket_send_buffer)
        if not tcp:
            return
        if options.tcp_keepalive is not None:
            idle = max(1, int(options.tcp_keepalive))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, idle // 3))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        if options.tcp_user_timeout is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT,
                            max(1, int(options.tcp_user_timeout * 1000)))
