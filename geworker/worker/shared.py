"""What the master prepares before forking and every worker inherits.

* **Shared memory**, mapped when this module is imported (in the master,
  before any fork), so the master and every worker see the same bytes::

      [0:8]    the reload generation: reloads (HUP) the master has started
      [8:16]   the newest generation that has a worker serving
      [16:24]  flags: the instance is up (a worker has served), the master is stopping
      [24:...] one connection-count slot (8 bytes) per worker index
      [...]    one boot-failure slot (8 bytes) per worker index: a generation
               and how many of its workers at that index failed to boot in a row

  An old worker told to stop compares generations to tell a reload from a
  shutdown: on a reload it keeps serving until a worker of a newer
  generation serves, unless the master is stopping. The balancer
  (:mod:`geworker.worker.balance`) reads the other workers' counts; a
  worker that boots after failures waits the back-off its slot gives
  (:mod:`geworker.worker.bootretry`).
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
    "boot_failures",
    "bump_generation",
    "count_boot_failure",
    "datagram_socket",
    "instance_up",
    "mark_master_stopping",
    "mark_serving",
    "master_stopping",
    "release_index",
    "reload_generation",
    "serving_generation",
    "shared_memory",
]

#: Worker indexes that get a connection-count slot in shared memory.
WORKER_SLOTS = 1024
#: Where the connection-count slots start in the shared memory.
SLOTS_OFFSET = 24
#: Where the boot-failure slots start.
FAILURES_OFFSET = SLOTS_OFFSET + 8 * WORKER_SLOTS

_FLAGS = slice(16, 24)
_UP = 1  # a worker has served since the master started
_STOPPING = 2  # the master is shutting down (no reload will complete)

_shared = mmap.mmap(-1, FAILURES_OFFSET + 8 * WORKER_SLOTS)
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


def mark_serving(generation: int, index: int) -> None:
    """Record, from a worker, that a worker of ``generation`` is serving at ``index``.

    The instance is up from then on, and the failures counted at that index end.
    """
    if generation > serving_generation():
        _shared[8:16] = generation.to_bytes(8, "little")
    _set_flag(_UP)
    if boot_failures(generation, index):
        at = FAILURES_OFFSET + 8 * index
        _shared[at:at + 8] = bytes(8)


def serving_generation() -> int:
    """The newest generation that has a worker serving."""
    return int.from_bytes(_shared[8:16], "little")


def instance_up() -> bool:
    """True once a worker has served since the master started (its very first start is over)."""
    return bool(_flags() & _UP)


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


def boot_failures(generation: int, index: int) -> int:
    """How many workers of ``generation`` at ``index`` failed to boot in a row."""
    if index >= WORKER_SLOTS:
        return 0
    at = FAILURES_OFFSET + 8 * index
    slot_generation = int.from_bytes(_shared[at:at + 4], "little")
    count = int.from_bytes(_shared[at + 4:at + 8], "little")
    return count if slot_generation == generation else 0


def count_boot_failure(generation: int, index: int) -> int:
    """Count, from a worker that failed to boot, one more failure at its index; returns the count.

    One process at a time holds a given (generation, index), so a plain
    read-modify-write is safe.
    """
    count = boot_failures(generation, index) + 1
    if index < WORKER_SLOTS:
        at = FAILURES_OFFSET + 8 * index
        _shared[at:at + 8] = (generation.to_bytes(4, "little")
                              + min(count, 2**32 - 1).to_bytes(4, "little"))
    return count


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


def release_index(worker: Any) -> None:
    """Free the index of a worker that exited (master side, from ``child_exit``).

    The master may still hold the worker object while it spawns a replacement,
    which must get the same index.
    """
    for index, (_, ref) in list(_indexes.items()):
        if ref() is worker:
            del _indexes[index]


def add_datagram_socket(bind: str, sock: socket.socket) -> None:
    """Keep a UDP socket the master bound for ``bind`` (master side, at first start)."""
    _datagram_sockets[bind] = sock


def datagram_socket(bind: str) -> socket.socket | None:
    """The UDP socket the master bound for ``bind``, if any."""
    return _datagram_sockets.get(bind)
