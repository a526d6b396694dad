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

__all__ = ["ServerRuntime", "all_runtimes", "runtime_of"]


class ServerRuntime:
    """The run-time state of one server in this process.

    Attributes:
        server: the declared server.
        connections: the open stream connections of this process, by id.
        draining: set when the worker stops; connections opened from then on
            drain at once.
        spawn: starts a connection's greenlet (None: ``gevent.spawn``); the
            worker gives its own group's, so it can wait for them when it stops.
        publish: ``publish(message, exclude)`` sends a broadcast to this
            server's connections in the other processes (None outside a worker).
    """

    __slots__ = ("__weakref__", "connections", "draining", "publish", "server", "spawn")

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connections: dict[int, Connection] = {}
        self.draining = False
        self.spawn: Callable[..., Any] | None = None
        self.publish: Callable[[Any, set[int]], Any] | None = None

    def broadcast(self, message: Any, exclude: Iterable[int] = (),
                  all_workers: bool = False) -> int:
        """See :meth:`geworker.Server.broadcast`."""
        skip = set(exclude)
        if all_workers and self.publish is not None:
            self.publish(message, skip)  # (first: a message it cannot carry raises here)
        sent = 0
        for conn in list(self.connections.values()):
            if conn.accepts_messages and conn.id not in skip and conn.send(message):
                sent += 1
        return sent


_runtimes: weakref.WeakKeyDictionary[Server, ServerRuntime] = weakref.WeakKeyDictionary()


def runtime_of(server: Server) -> ServerRuntime:
    """The run-time state of ``server`` in this process (made on first use)."""
    runtime = _runtimes.get(server)
    if runtime is None:
        runtime = _runtimes[server] = ServerRuntime(server)
    return runtime


def all_runtimes() -> list[ServerRuntime]:
    """The run-time state of every server used in this process."""
    return list(_runtimes.values())
