"""What a :class:`~geworker.server.Server` holds at run time, inside one worker process.

A ``Server`` is the user's declaration: listeners and callbacks, the same in
every process that imports the app. What changes while a worker serves lives
here instead: the open connections (for broadcasts and the drain), whether the
worker is stopping, how connection greenlets are spawned and how a broadcast
reaches the other workers. The worker fills it in; connections read it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..server import Server
    from .connection import Connection

__all__ = ["ServerRuntime", "runtime_of"]


class ServerRuntime:
    """The run-time state of one server in this process.

    Attributes:
        server: the declared server.
        connections: the open stream connections of this process, by id.
        draining: set when the worker stops; connections opened from then on
            drain at once.
        spawn: starts a connection's greenlet (None: ``gevent.spawn``); the
            worker gives its own group's, so it can wait for them when it stops.
        publish: sends a broadcast to the other workers of the instance (None
            outside a worker, or when the bus could not start).
    """

    __slots__ = ("__weakref__", "connections", "draining", "publish", "server", "spawn")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connections: dict[int, Connection] = {}
        self.draining = False
        self.spawn: Callable[..., Any] | None = None
        self.publish: Callable[[Any], int] | None = None

    def broadcast(self, message: Any, exclude: Iterable[int] = (),
                  all_workers: bool = False) -> int:
        """See :meth:`geworker.Server.broadcast`."""
        if all_workers and self.publish is not None:
            self.publish(message)
        skip = set(exclude)
        sent = 0
        for conn in list(self.connections.values()):
            if conn.id not in skip and conn.send(message):
                sent += 1
        return sent


_runtimes: weakref.WeakKeyDictionary[Server, ServerRuntime] = weakref.WeakKeyDictionary()


def runtime_of(server: Server) -> ServerRuntime:
    """The run-time state of ``server`` in this process (made on first use)."""
    runtime = _runtimes.get(server)
    if runtime is None:
        runtime = _runtimes[server] = ServerRuntime(server)
    return runtime
