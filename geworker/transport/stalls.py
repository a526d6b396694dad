"""Stalled messages: a peer that starts a message must finish it within ``message_timeout``.

Idle connections are the point of a long-connection server and may stay
silent forever (``idle_timeout`` and heartbeats are opt-in). A *started*
message is different: a peer that sends a frame header one byte every few
seconds (slowloris) holds a greenlet and a buffer for nothing. The read loop
notes when a message begins (``_partial_since``); one timer per worker
checks, every :data:`SWEEP_EVERY` seconds, the connections that have one
pending, and closes those past their listener's ``message_timeout``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["SWEEP_EVERY", "watch"]

#: Seconds between two checks: a stalled peer is closed within message_timeout + this.
SWEEP_EVERY = 1.0

_pending: dict[int, Connection] = {}
_timer: Any = None


def watch(conn: Connection) -> None:
    """``conn`` began a message (its ``_partial_since`` is set): check it until it ends."""
    global _timer
    _pending[conn.id] = conn
    if _timer is None:
        import gevent

        _timer = gevent.get_hub().loop.timer(SWEEP_EVERY, SWEEP_EVERY)
        _timer.start(_sweep)


def _sweep() -> None:
    now = time.monotonic()
    for conn in list(_pending.values()):
        since = conn._partial_since
        if not since or not conn._state.is_open or not conn.protocol.has_partial_message:
            conn._partial_since = 0.0
            del _pending[conn.id]
        elif now - since > (conn.listener.options.message_timeout or float("inf")):
            del _pending[conn.id]
            conn._message_timed_out(now - since)
