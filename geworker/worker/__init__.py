"""Inside a worker process: the gunicorn worker class and the runtime it runs.

``geworker.Worker`` (:mod:`~geworker.worker.worker`) is what ``gunicorn -k``
loads; :mod:`~geworker.worker.balance` spreads connections over the workers and
it starts the messaging backend (:mod:`geworker.messaging`). Each heartbeat
writes the worker's snapshot (:mod:`~geworker.worker.snapshot`) and publishes
its metrics (:mod:`~geworker.worker.metrics`). :mod:`~geworker.worker.shared`
holds what the master prepares before forking (shared memory, indexes, UDP
sockets) and :mod:`~geworker.worker._gunicorn` every use of gunicorn
internals; the master imports both, and this layer never imports the master.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .worker import Worker

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    """``geworker.worker.Worker``, loaded on first use (it imports gevent and gunicorn)."""
    if name != "Worker":
        raise AttributeError(f"module 'geworker.worker' has no attribute {name!r}")
    from .worker import Worker

    return Worker
