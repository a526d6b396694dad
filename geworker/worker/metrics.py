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
* messaging (:mod:`geworker.messaging`): ``geworker_messaging_relayed_out_total`` /
  ``geworker.messaging.relayed_out``, and ``..._relayed_in``, ``..._dropped``,
  ``..._query_timeouts``, ``..._send_failures``, ``..._reconnects``,
  ``..._rejected_peers``; gauges ``geworker_messaging_uids``, ``..._groups`` and
  ``..._connected`` (workers whose backend is connected) /
  ``geworker.worker.<index>.messaging_uids`` and ``..._groups``
* ``geworker_reloads_total`` / ``geworker.reloads`` (master)
* ``geworker_worker_exits_total{status}`` / ``geworker.worker_exits`` (master)

Workers publish on their heartbeat tick (about once a second) from the
counters in :mod:`geworker.stats`, so the hot path pays nothing. This module
is the worker side (:class:`WorkerMetrics`); the master side (the
``/metrics`` server, reload and exit counts) is :mod:`geworker.master.metrics`.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["COUNTERS", "MESSAGING_COUNTERS", "MULTIPROC_ENV", "PROMETHEUS_ENV", "WorkerMetrics",
           "emit", "prometheus_enabled"]

PROMETHEUS_ENV = "GEWORKER_PROMETHEUS"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
COUNTERS = ("connections_accepted", "connections_closed", "messages_in", "messages_out",
            "bytes_in", "bytes_out", "send_failures", "datagrams_in")
MESSAGING_COUNTERS = ("relayed_out", "relayed_in", "dropped", "query_timeouts", "send_failures",
                      "reconnects", "rejected_peers")
MESSAGING_GAUGES = ("uids", "groups", "connected")


def prometheus_enabled() -> bool:
    """True when ``GEWORKER_PROMETHEUS`` is set."""
    return bool(os.environ.get(PROMETHEUS_ENV))


def emit(log: Any, metric: str, value: float, mtype: str) -> None:
    """Send one statsd metric through gunicorn's logger (its statsd handler)."""
    log.info("", extra={"metric": metric, "value": value, "mtype": mtype})


class WorkerMetrics:
    """Publishes one worker's counters on each heartbeat tick."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker
        self.statsd = bool(worker.cfg.statsd_host)
        self.last: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.last_errors: dict[str, int] = {}
        self.last_messaging: dict[str, int] = dict.fromkeys(MESSAGING_COUNTERS, 0)
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
            for name in MESSAGING_COUNTERS:
                self.prom[f"messaging_{name}"] = Counter(
                    f"geworker_messaging_{name}", f"messaging: {name.replace('_', ' ')}")
            for name in MESSAGING_GAUGES:
                self.prom[f"messaging_{name}"] = Gauge(
                    f"geworker_messaging_{name}", f"messaging: {name}",
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

        open_now = self.worker.connection_count if self.worker.servers else 0
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
        messenger = getattr(self.worker, "messenger", None)
        state = messenger.describe() if messenger is not None else {}
        messaging = {}
        for name in MESSAGING_COUNTERS if state else ():
            messaging[name] = state[name] - self.last_messaging[name]
            self.last_messaging[name] = state[name]
        if self.prom:
            for name, delta in messaging.items():
                if delta > 0:
                    self.prom[f"messaging_{name}"].inc(delta)
            for name in MESSAGING_GAUGES if state else ():
                self.prom[f"messaging_{name}"].set(int(state[name]))
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
            emit(log, f"{prefix}.connections", open_now, "gauge")
            emit(log, f"{prefix}.timers", timer_count, "gauge")
            emit(log, f"{prefix}.connections_parked", counters.connections_parked, "gauge")
            for name, delta in deltas.items():
                if delta:
                    emit(log, f"geworker.{name.replace('_', '.', 1)}", delta, "counter")
            for kind, delta in errors.items():
                if delta:
                    emit(log, f"geworker.errors.{kind}", delta, "counter")
            for name, delta in messaging.items():
                if delta:
                    emit(log, f"geworker.messaging.{name}", delta, "counter")
            if state:
                emit(log, f"{prefix}.messaging_uids", state["uids"], "gauge")
                emit(log, f"{prefix}.messaging_groups", state["groups"], "gauge")
