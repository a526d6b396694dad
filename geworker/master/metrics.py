"""The master side of the optional metrics (see :mod:`geworker.worker.metrics`).

With ``GEWORKER_PROMETHEUS=host:port`` the master serves ``/metrics`` on that
address, aggregated over the workers with prometheus_client's multiprocess
mode (``PROMETHEUS_MULTIPROC_DIR`` defaults to ``<run dir>/prometheus``, wiped
at start), and counts reloads and worker exits itself. With statsd
(``--statsd-host``) it sends the same two counts through gunicorn's logger.
The counts are taken in the master's hooks (:mod:`geworker.master.hooks`).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from ..errors import BootError
from ..worker.metrics import MULTIPROC_ENV, PROMETHEUS_ENV, emit, prometheus_enabled

__all__ = ["count_exit", "count_reload", "setup"]

_started = False
_master_metrics: dict[str, Any] = {}


def _split_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def setup(cfg: Any, run_dir: Path | None) -> None:
    """Start the Prometheus server at first start when it is turned on (then never again).

    Raises:
        BootError: a bad address, a missing prometheus_client, an address in use.
    """
    global _started
    if prometheus_enabled() and not _started:
        _started = True
        _start_prometheus(cfg, run_dir)


def _start_prometheus(cfg: Any, run_dir: Path | None) -> None:
    value = os.environ[PROMETHEUS_ENV]
    try:
        host, port = _split_address(value)
    except ValueError:
        raise BootError(f"{PROMETHEUS_ENV}={value!r} is not host:port") from None
    if not os.environ.get(MULTIPROC_ENV):
        if run_dir is None:
            raise BootError(f"Prometheus metrics need {MULTIPROC_ENV} or a run directory")
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
        raise BootError(f"{PROMETHEUS_ENV} is set but prometheus_client is missing: "
                        "pip install 'geworker[prometheus]'") from None
    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    try:
        prometheus_client.start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise BootError(f"cannot serve Prometheus metrics on {value}: {exc}") from None
    _master_metrics["reloads"] = prometheus_client.Counter(
        "geworker_reloads", "Reloads (HUP) of the gunicorn master")
    _master_metrics["exits"] = prometheus_client.Counter(
        "geworker_worker_exits", "Worker exits by status", ["status"])
    print(f"geworker: Prometheus metrics on http://{value}/metrics", file=sys.stderr, flush=True)


def count_reload(arbiter: Any) -> None:
    """Count a reload (from ``on_reload``); nothing when no metrics backend is on."""
    if "reloads" in _master_metrics:
        _master_metrics["reloads"].inc()
    if arbiter.cfg.statsd_host:
        emit(arbiter.log, "geworker.reloads", 1, "counter")


def count_exit(arbiter: Any, worker: Any, label: str) -> None:
    """Count a worker exit and retire its Prometheus files (from ``child_exit``)."""
    if prometheus_enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
    if "exits" in _master_metrics:
        _master_metrics["exits"].labels(label).inc()
    if arbiter.cfg.statsd_host:
        emit(arbiter.log, "geworker.worker_exits", 1, "counter")
