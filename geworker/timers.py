"""Per-worker millisecond timers.

Timers live in the worker process that created them (usually in
``on_worker_start``): with ``-w 4`` there are four of each. To run a job in
one worker only, test the worker's stable index::

    @server.on_worker_start
    def start(worker):
        if worker.index == 0:
            timers.add(60, cleanup)

Each firing runs the callback in its own greenlet, so a slow callback delays
no other timer. Exceptions are logged and the timer keeps running. Resolution
is about 1 ms. All timers of a worker are cancelled when it starts to stop.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["add", "cancel", "cancel_all", "count"]

log = logging.getLogger("geworker")
_ids = itertools.count(1)
_timers: dict[int, Any] = {}


def add(interval: float, callback: Callable[..., Any], *args: Any, repeat: bool = True) -> int:
    """Call ``callback(*args)`` every ``interval`` seconds (once if ``repeat=False``).

    Returns the timer id, for :func:`cancel`.

    Raises:
        ValueError: when ``interval`` is negative (0 means "as soon as possible").
    """
    if interval < 0:
        raise ValueError("timer interval must not be negative")
    import gevent  # here, not at the top: apps import this module in the master's probe too

    timer_id = next(_ids)
    watcher = gevent.get_hub().loop.timer(interval, interval if repeat else 0.0)

    def fire() -> None:
        if not repeat:
            _timers.pop(timer_id, None)
        gevent.spawn(_run, timer_id, callback, args)

    _timers[timer_id] = watcher
    watcher.start(fire)
    return timer_id


def _run(timer_id: int, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        callback(*args)
    except Exception:
        log.exception("geworker: timer #%s (%r) raised", timer_id, callback)


def cancel(timer_id: int) -> bool:
    """Stop a timer. Returns False if it had already ended or never existed."""
    watcher = _timers.pop(timer_id, None)
    if watcher is None:
        return False
    watcher.stop()
    watcher.close()
    return True


def cancel_all() -> int:
    """Stop every timer of this worker; returns how many were running."""
    ids = list(_timers)
    for timer_id in ids:
        cancel(timer_id)
    return len(ids)


def count() -> int:
    """Number of timers still scheduled in this worker."""
    return len(_timers)
