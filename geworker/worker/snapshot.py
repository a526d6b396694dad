"""A worker's snapshot in the run directory, refreshed on each heartbeat tick.

Each worker writes ``workers/<pid>.json`` (see :mod:`geworker.rundir`) on
its heartbeat, which runs between callbacks: a worker stuck in a CPU-bound
callback stops refreshing it, which is how ``geworker status`` tells a busy
worker. After a ``geworker connections`` request (a touched
``connections.request``) the next tick also writes the worker's connection
list. The same tick publishes the metrics (:mod:`geworker.worker.metrics`).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import TYPE_CHECKING, Any

from .. import rundir, timers
from ..stats import counters
from ..transport.state import ConnectionState
from .metrics import WorkerMetrics

if TYPE_CHECKING:
    from ..transport.connection import Connection

__all__ = ["SnapshotWriter", "describe_connection"]


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _address(addr: Any) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        host = f"[{addr[0]}]" if ":" in str(addr[0]) else addr[0]
        return f"{host}:{addr[1]}"
    if isinstance(addr, bytes):
        addr = addr.decode(errors="replace")
    return str(addr or "-")


def describe_connection(conn: Connection, pid: int, now: float) -> dict[str, Any]:
    """One row of ``geworker connections``.

    An open connection shows as ``ESTABLISHED`` whether it is parked or not;
    ``parked`` tells which.
    """
    state = conn.state
    return {
        "pid": pid,
        "id": conn.id,
        "server": conn.server.name,
        "transport": conn.listener.transport,
        "protocol": conn.listener.protocol.__name__,
        "local": _address(conn.local_address),
        "remote": _address(conn.remote_address),
        "bytes_read": conn.bytes_read,
        "bytes_written": conn.bytes_written,
        "send_queue": conn.send_queue_size,
        "state": (ConnectionState.OPEN if state.is_open else state).value,
        "parked": conn.is_parked,
        "age": round(now - conn.created, 3),
    }


def _messaging(worker: Any) -> dict[str, Any] | None:
    messenger = getattr(worker, "messenger", None)
    return None if messenger is None else messenger.describe()


class SnapshotWriter:
    """Writes this worker's snapshot on each heartbeat tick.

    :meth:`write` never raises (a full disk must not kill the worker); the
    first failure is logged, later ones are not.
    """

    def __init__(self, worker: Any, interval: float) -> None:
        self.worker = worker
        self.interval = interval
        self.started = time.time()
        run_dir = rundir.run_dir()
        self.closed = run_dir is None
        self.failed = False
        self.served_request = 0
        self._last = (time.monotonic(), 0)
        self.metrics: Any = None
        try:
            self.metrics = WorkerMetrics.create(worker)
        except Exception as exc:
            worker.log.warning("geworker: metrics are off: %s", exc)
        if run_dir is not None:
            self.path = run_dir / rundir.WORKERS_DIR / f"{os.getpid()}.json"
            self.connections_path = self.path.with_suffix(".connections.json")
            self.request_path = run_dir / rundir.CONNECTIONS_REQUEST

    def write(self) -> None:
        """Refresh the snapshot (and the connections list when requested), push metrics."""
        if self.metrics is not None:
            try:
                self.metrics.push()
            except Exception as exc:
                self.metrics = None
                self.worker.log.warning("geworker: metrics are off: %s", exc)
        if self.closed:
            return
        try:
            rundir.write_json(self.path, self.snapshot())
            self._serve_connections_request()
        except Exception as exc:
            if not self.failed:
                self.failed = True
                self.worker.log.warning("geworker: cannot write status snapshot %s: %s",
                                        self.path, exc)

    def snapshot(self) -> dict[str, Any]:
        """The current state of this worker as a JSON-friendly dict."""
        worker = self.worker
        servers = getattr(worker, "servers", [])
        now, mono = time.time(), time.monotonic()
        last_mono, last_messages = self._last
        elapsed = mono - last_mono
        qps = (counters.messages_in - last_messages) / elapsed if elapsed > 0 else 0.0
        self._last = (mono, counters.messages_in)
        return {
            "pid": os.getpid(),
            "index": getattr(worker, "index", None),
            "generation": getattr(worker, "generation", None),
            "name": " ".join(server.name for server in servers),
            "listeners": [lnr.url for server in servers for lnr in server.listeners],
            "started": self.started,
            "heartbeat": now,
            "interval": self.interval,
            "rss": _rss(),
            "connections": worker.connection_count if servers else 0,
            "timers": timers.count(),
            "counters": counters.as_dict(),
            "qps": round(max(qps, 0.0), 1),
            "state": ("holding" if getattr(worker, "holding", False)
                      else "idle" if worker.alive else "draining"),
            "messaging": _messaging(worker),
        }

    def _serve_connections_request(self) -> None:
        try:
            requested = self.request_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if requested <= self.served_request or time.time_ns() - requested > 10**10:
            return  # answered already, or too old to have a reader waiting
        self.served_request = requested
        now, pid = time.time(), os.getpid()
        rows = [describe_connection(c, pid, now) for c in self.worker.connections]
        rundir.write_json(self.connections_path, {"request": requested, "connections": rows})

    def remove(self) -> None:
        """Delete this worker's files; later :meth:`write` calls do nothing."""
        if self.closed:
            return
        self.closed = True
        for path in (self.path, self.connections_path):
            with contextlib.suppress(OSError):
                path.unlink()
