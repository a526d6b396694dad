"""An even spread of connections across workers.

All workers wait on the same listening socket and Linux wakes them all; the
first to call ``accept()`` wins, so the worker that happens to be awake takes
most of a burst of new connections (a forked gevent server often ends up
with nearly all of them on one process). Each worker therefore publishes its
open-connection count in a slot of the memory the master shared before
forking, and a worker holding more than its fair share (plus a tolerance)
stops accepting for a few milliseconds so the others take the next ones. If
the others do not (they are busy), it accepts again after ``MAX_WAIT``.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sized
from typing import Any

from ..transport import _gevent
from .shared import SLOTS_OFFSET

__all__ = ["Balancer"]

TOLERANCE = 1.1  # a worker may hold 10% (plus one connection) above an even share
RETRY = 0.005  # seconds between accept attempts of a worker over its share
LIMIT_RETRY = 0.05  # seconds between accept attempts at the worker_connections limit
MAX_WAIT = 0.05  # accept anyway when the others have not taken the backlog by then
PUBLISH_EVERY = 0.1  # seconds between publications of the count (it also drops on closes)

_SLOT = struct.Struct("<q")


class Balancer:
    """Accept gate of one worker, sharing counts through ``shared`` (see ``worker.shared``)."""

    def __init__(self, shared: Any, index: int, workers: int, connections: Sized) -> None:
        self.shared = shared
        self.index = index
        self.workers = workers
        self.connections = connections
        self.active = True
        self._waiting_since: float | None = None
        self._publisher: Any = None

    def _offset(self, index: int) -> int:
        return SLOTS_OFFSET + 8 * index

    def publish(self) -> None:
        """Write this worker's open-connection count into its slot."""
        if self.active:
            _SLOT.pack_into(self.shared, self._offset(self.index), len(self.connections))

    def start(self, loop: Any) -> None:
        """Publish now and then every ``PUBLISH_EVERY`` seconds, on ``loop``."""
        self.publish()
        self._publisher = loop.timer(PUBLISH_EVERY, PUBLISH_EVERY)
        self._publisher.start(self.publish)

    def stop(self) -> None:
        """Stop publishing: a draining worker's slot now belongs to its successor."""
        self.active = False
        if self._publisher is not None:
            self._publisher.stop()

    def over_share(self) -> bool:
        """True when this worker should leave the next connection to the others."""
        mine = len(self.connections)
        self.publish()
        total = mine + sum(
            _SLOT.unpack_from(self.shared, self._offset(i))[0]
            for i in range(self.workers) if i != self.index)
        if mine <= total / self.workers * TOLERANCE + 1:
            self._waiting_since = None
            return False
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        return now - self._waiting_since < MAX_WAIT

    def gate(self, server: Any, at_limit: Callable[[], bool]) -> Callable[[], bool]:
        """A replacement for gevent's ``server.full``: "full" at the connection
        limit and while over share.

        gevent stops accepting when ``full()`` is true; a timer restarts it
        after a back-off (short when over share, longer at the limit).
        """
        retry = _gevent.OneShot(server.loop, RETRY)
        retry_at_limit = _gevent.OneShot(server.loop, LIMIT_RETRY)

        def full() -> bool:
            if at_limit():
                retry_at_limit.start(_gevent.accept_retry(server))
                return True
            if self.active and self.over_share():
                retry.start(_gevent.accept_retry(server))
                return True
            return False

        return full
