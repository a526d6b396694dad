"""The gunicorn server hooks geworker adds in the master, in front of the user's.

Chained with ``chain_hook`` (:mod:`geworker.worker._gunicorn`) on every
configure, since a reload (``HUP``) re-reads the config and resets them:

* ``child_exit``: name the exit (:func:`classify_exit`), count it in the
  master's record and drop the worker's snapshot (:mod:`~geworker.master.record`),
  count it in the metrics (:mod:`~geworker.master.metrics`);
* ``nworkers_changed``: record the target number of workers;
* ``on_reload``: count the reload in the metrics;
* ``on_exit``: remove the master's record.

Bookkeeping never takes the master down: a failure is printed and the
user's hook still runs.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from ..worker import _gunicorn
from . import metrics, record

__all__ = ["classify_exit", "install"]


def install(cfg: Any) -> None:
    """Chain geworker's hooks in front of the user's (idempotent)."""
    _gunicorn.chain_hook(cfg, "child_exit", _child_exit)
    _gunicorn.chain_hook(cfg, "nworkers_changed", _nworkers_changed)
    _gunicorn.chain_hook(cfg, "on_reload", metrics.count_reload)
    _gunicorn.chain_hook(cfg, "on_exit", _on_exit)


def classify_exit(status: int | None, aborted: bool = False) -> str:
    """Name a worker's exit: ``normal``, ``timeout``, ``exit code N`` or ``killed by SIGNAME``.

    Args:
        status: the raw ``waitpid`` status, or None if unknown.
        aborted: gunicorn's ``worker.aborted`` (it missed its heartbeat and
            was sent ``SIGABRT``, then ``SIGKILL``).
    """
    if aborted:
        return "timeout"
    if status is None:
        return "unknown"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            return f"killed by {signal.Signals(sig).name}"
        except ValueError:
            return f"killed by signal {sig}"
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else status
    return "normal" if code == 0 else f"exit code {code}"


def _child_exit(arbiter: Any, worker: Any) -> None:
    label = classify_exit(_gunicorn.caller_wait_status(), bool(worker.aborted))
    try:
        record.record_exit(worker.pid, label)
    except Exception as exc:
        print(f"geworker: recording a worker exit failed: {exc}", file=sys.stderr)
    try:
        metrics.count_exit(arbiter, worker, label)
    except Exception as exc:
        print(f"geworker: metrics for a worker exit failed: {exc}", file=sys.stderr)


def _nworkers_changed(arbiter: Any, new_value: int, old_value: int | None) -> None:
    record.record_workers(new_value)


def _on_exit(arbiter: Any) -> None:
    record.remove_master_record()
