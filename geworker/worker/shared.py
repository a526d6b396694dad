"""What the master prepares before forking and every worker inherits.

* **Shared memory**, mapped when this module is imported (in the master,
  before any fork), so the master and every worker see the same bytes::

      [0:8]    the reload generation: reloads (HUP) the master has started
      [8:16]   the newest generation that has a worker serving
      [16:24]  flags: the master is stopping
      [24:...] one connection-count slot (8 bytes) per worker index

  An old worker told to stop compares generations to tell a reload from a
  shutdown: on a reload it keeps serving until a worker of a newer
  generation serves, unless the master is stopping. The balancer
  (:mod:`geworker.worker.balance`) reads the other workers' counts.
* **Worker indexes**: a stable number 0..N-1 per worker of a generation,
  assigned in the master before the fork.
* **Datagram sockets** the master bound, by bind address (gunicorn binds
  only stream sockets).

The master writes here (:mod:`geworker.master.configure`); workers read.
This module belongs to the worker layer so that the worker never imports
the master.
"""

from __future__ import annotations

import mmap
import socket
import weakref
from typing import Any

__all__ = [
    "SLOTS_OFFSET",
    "WORKER_SLOTS",
    "add_datagram_socket",
    "assign_index",
    "bump_generation",
    "datagram_socket",
    "mark_master_stopping",
    "mark_serving",
    "master_stopping",
    "reload_generation",
    "serving_generation",
    "shared_memory",
]

#: Worker indexes that get a connection-count slot in shared memory.
WORKER_SLOTS = 1024
#: Where the connection-count slots start in the shared memory.
SLOTS_OFFSET = 24

_FLAGS = slice(16, 24)
_STOPPING = 2  # the master is shutting down (no reload will complete)

_shared = mmap.mmap(-1, SLOTS_OFFSET + 8 * WORKER_SLOTS)
_indexes: dict[int, tuple[int, Any]] = {}
_datagram_sockets: dict[str, socket.socket] = {}


def shared_memory() -> mmap.mmap:
    """The memory shared by the master and all workers (layout in the module doc)."""
    return _shared


def bump_generation() -> int:
    """Count a reload (master side, before the new workers fork); returns the new generation."""
    generation = reload_generation() + 1
    _shared[:8] = generation.to_bytes(8, "little")
    return generation


def reload_generation() -> int:
    """The number of reloads the master has started (readable from workers)."""
    return int.from_bytes(_shared[:8], "little")


def mark_serving(generation: int) -> None:
    """Record, from a worker, that a worker of ``generation`` is serving."""
    if generation > serving_generation():
        _shared[8:16] = generation.to_bytes(8, "little")


def serving_generation() -> int:
    """The newest generation that has a worker serving."""
    return int.from_bytes(_shared[8:16], "little")


def mark_master_stopping() -> None:
    """Record, in the master, that it is shutting down: old workers stop holding for new ones."""
    _set_flag(_STOPPING)


def master_stopping() -> bool:
    """True once the master is shutting down."""
    return bool(_flags() & _STOPPING)


def _flags() -> int:
    return int.from_bytes(_shared[_FLAGS], "little")


def _set_flag(flag: int) -> None:
    if not _flags() & flag:
        _shared[_FLAGS] = (_flags() | flag).to_bytes(8, "little")


def assign_index(worker: Any) -> tuple[int, int]:
    """Give a new worker the lowest index no live worker of this generation holds.

    Returns ``(index, generation)``. Runs in the master before the fork; a
    worker that died (or an old one being replaced by a reload) frees its index.
    """
    generation = reload_generation()
    taken = {i for i, (gen, ref) in _indexes.items()
             if gen == generation and ref() is not None}
    index = 0
    while index in taken:
        index += 1
    _indexes[index] = (generation, weakref.ref(worker))
    return index, generation


def add_datagram_socket(bind: str, sock: socket.socket) -> None:
    """Keep a UDP socket the master bound for ``bind`` (master side, at first start)."""
    _datagram_sockets[bind] = sock


def datagram_socket(bind: str) -> socket.socket | None:
    """The UDP socket the master bound for ``bind``, if any."""
    return _datagram_sockets.get(bind)
