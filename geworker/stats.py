"""Per-worker counters, cheap enough for the hot path.

Each worker process has one :data:`counters` instance; the transport loops
increment it, and ``status``, metrics and ``max_requests`` read it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["WorkerCounters", "counters"]


@dataclass
class WorkerCounters:
    """Cumulative counts for this worker process since it started."""

    connections_accepted: int = 0
    connections_closed: int = 0
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    send_failures: int = 0
    datagrams_in: int = 0
    #: A gauge, not a count: connections now waiting for input without a greenlet.
    connections_parked: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        data = asdict(self)
        data["errors"] = dict(self.errors)
        return data


#: The counters of the current process.
counters = WorkerCounters()
