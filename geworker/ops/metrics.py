"""Optional metrics: Prometheus (multiprocess mode) and statsd. Both are off by default.

**Prometheus** — one setting, ``GEWORKER_PROMETHEUS=host:port`` in the
environment (``geworker start --prometheus host:port``), and the extra
``pip install 'geworker[prometheus]'``. The master then serves ``/metrics``
on that address, aggregated over the workers with prometheus_client's
multiprocess mode: ``PROMETHEUS_MULTIPROC_DIR`` defaults to
``<run dir>/prometheus`` (wiped at start) and dead workers are marked with
``mark_process_dead`` in the ``child_exit`` hook.

**statsd** — gunicorn's own setting, ``--statsd-host host:port`` (with
``--statsd-prefix``). Workers send through gunicorn's logger
(``log.info("", extra={"metric": ..., "value": ..., "mtype": ...})``).

Metrics (Prometheus name / statsd name):

* ``geworker_connections`` (gauge, live workers summed) / ``geworker.worker.<index>.connections``
* ``geworker_connections_parked`` (gauge: waiting without a greenlet) /
  ``geworker.worker.<index>.connections_parked``
* ``geworker_timers`` (gauge) / ``geworker.worker.<index>.timers``
* ``geworker_connections_accepted_total`` / ``geworker.connections.accepted``, and
  ``..._closed``, ``geworker_messages_in_total``, ``..._out``, ``geworker_bytes_in_total``,
  ``..._out``, ``geworker_send_failures_total``, ``geworker_datagrams_in_total``
* ``geworker_errors_total{kind}`` / ``geworker.errors.<kind>``
* ``geworker_reloads_total`` / ``geworker.reloads`` (master)
* ``geworker_worker_exits_total{status}`` / ``geworker.worker_exits`` (master)

Workers publish on their heartbeat tick (about once a second) from the
counters in :mod:`geworker.stats`, so the hot path pays nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

__all__ = ["PROMETHEUS_ENV", "WorkerMetrics", "setup_master"]

PROMETHEUS_ENV = "GEWORKER_PROMETHEUS"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
COUNTERS = ("connections_accepted", "connections_closed", "messages_in", "messages_out",
            "bytes_in", "bytes_out", "send_failures", "datagrams_in")

_started = False
_master_metrics: dict[str, Any] = {}


def prometheus_enabled() -> bool:
    """True when ``GEWORKER_PROMETHEUS`` is set."""
    return bool(os.environ.get(PROMETHEUS_ENV))


def _split_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def setup_master(cfg: Any, run_dir: Path | None) -> None:
    """Master side, at start and on every reload (called by ``master.configure``)."""
    global _started
    if not prometheus_enabled() and not cfg.statsd_host:
        return
    if prometheus_enabled() and not _started:
        _started = True
        _start_prometheus(cfg, run_dir)
    _install_hooks(cfg)


def _start_prometheus(cfg: Any, run_dir: Path | None) -> None:
    from ..master.configure import fail_boot

    value = os.environ[PROMETHEUS_ENV]
    try:
        host, port = _split_address(value)
    except ValueError:
        fail_boot(f"{PROMETHEUS_ENV}={value!r} is not host:port")
    if not os.environ.get(MULTIPROC_ENV):
        if run_dir is None:
            fail_boot(f"Prometheus metrics need {MULTIPROC_ENV} or a run directory")
            return
        path = run_dir / "prometheus"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(mode=0o755)
        if os.geteuid() == 0:
            os.chown(path, cfg.uid, cfg.gid)
        # Must be set before prometheus_client is imported: it picks its value
        # class at import time, and the workers inherit the module.
        os.environ[MULTIPROC_ENV] = str(path)
    try:
        import prometheus_client
        from prometheus_client import multiprocess
    except ImportError:
        fail_boot(f"{PROMETHEUS_ENV} is set but prometheus_client is missing: "
                  "pip install 'geworker[prometheus]'")
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        prometheus_client.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        fail_boot(f"cannot serve Prometheus metrics on {value}: {exc}")
    _master_metrics["reloads"] = prometheus_client.Counter(
        "geworker_reloads", "Reloads (HUP) of the gunicorn master")
    _master_metrics["exits"] = prometheus_client.Counter(
        "geworker_worker_exits", "Worker exits by status", ["status"])
    print(f"geworker: Prometheus metrics on http://{value}/metrics", file=sys.stderr, flush=True)


def _emit(log: Any, metric: str, value: float, mtype: str) -> None:
    log.info("", extra={"metric": metric, "value": value, "mtype": mtype})


def _install_hooks(cfg: Any) -> None:
    user_child_exit = cfg.settings["child_exit"].get()
    if not getattr(user_child_exit, "_geworker_metrics", False):
        def child_exit(arbiter: Any, worker: Any) -> None:
            try:
                _worker_exited(arbiter, worker)
            except Exception as exc:
                print(f"geworker: metrics for a worker exit failed: {exc}", file=sys.stderr)
            user_child_exit(arbiter, worker)

        child_exit._geworker_metrics = True  # type: ignore[attr-defined]
        cfg.set("child_exit", child_exit)
    user_on_reload = cfg.settings["on_reload"].get()
    if not getattr(user_on_reload, "_geworker_metrics", False):
        def on_reload(arbiter: Any) -> None:
            if "reloads" in _master_metrics:
                _master_metrics["reloads"].inc()
            if arbiter.cfg.statsd_host:
                _emit(arbiter.log, "geworker.reloads", 1, "counter")
            user_on_reload(arbiter)

        on_reload._geworker_metrics = True  # type: ignore[attr-defined]
        cfg.set("on_reload", on_reload)


def _worker_exited(arbiter: Any, worker: Any) -> None:
    from . import status

    if prometheus_enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    label = status.classify_exit(status.caller_wait_status(), bool(worker.aborted))
    if "exits" in _master_metrics:
        _master_metrics["exits"].labels(label).inc()
    if arbiter.cfg.statsd_host:
        _emit(arbiter.log, "geworker.worker_exits", 1, "counter")


class WorkerMetrics:
    """Publishes one worker's counters on each heartbeat tick."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.statsd = bool(worker.cfg.statsd_host)
        self.last: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_errors: dict[str, int] = {}
        self.prom: dict[str, Any] = {}
        if prometheus_enabled():
            from prometheus_client import Counter, Gauge

            for name in COUNTERS:
                self.prom[name] = Counter(f"geworker_{name}", f"{name.replace('_', ' ')}")
            self.prom["errors"] = Counter("geworker_errors", "Errors by kind", ["kind"])
            self.prom["connections"] = Gauge("geworker_connections", "Open connections",
                                             multiprocess_mode="livesum")
            self.prom["timers"] = Gauge("geworker_timers", "Scheduled timers",
                                        multiprocess_mode="livesum")
            self.prom["parked"] = Gauge("geworker_connections_parked",
                                        "Connections waiting for input without a greenlet",
                                        multiprocess_mode="livesum")

    @classmethod
    def create(cls, worker: Any) -> WorkerMetrics | None:
        """A publisher, or None when no metrics backend is turned on."""
        if not prometheus_enabled() and not worker.cfg.statsd_host:
            return None
        return cls(worker)

    def push(self) -> None:
        """Publish what changed since the last tick."""
        from .. import timers
        from ..stats import counters

        server = self.worker.server
        open_now = len(server.connections) if server is not None else 0
        timer_count = timers.count()
        deltas = {}
        for name in COUNTERS:
            value = getattr(counters, name)
            deltas[name] = value - self.last[name]
            self.last[name] = value
        errors = {}
        for kind, value in counters.errors.items():
            errors[kind] = value - self.last_errors.get(kind, 0)
            self.last_errors[kind] = value
        if self.prom:
            for name, delta in deltas.items():
                if delta > 0:
                    self.prom[name].inc(delta)
            for kind, delta in errors.items():
                if delta > 0:
                    self.prom["errors"].labels(kind).inc(delta)
            self.prom["connections"].set(open_now)
            self.prom["timers"].set(timer_count)
            self.prom["parked"].set(counters.connections_parked)
        if self.statsd:
            log = self.worker.log
            prefix = f"geworker.worker.{self.worker.index}"
            _emit(log, f"{prefix}.connections", open_now, "gauge")
            _emit(log, f"{prefix}.timers", timer_count, "gauge")
            _emit(log, f"{prefix}.connections_parked", counters.connections_parked, "gauge")
            for name, delta in deltas.items():
                if delta:
                    _emit(log, f"geworker.{name.replace('_', '.', 1)}", delta, "counter")
            for kind, delta in errors.items():
                if delta:
                    _emit(log, f"geworker.errors.{kind}", delta, "counter")
