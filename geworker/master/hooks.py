"""The gunicorn server hooks geworker adds in the master, in front of the user's.

Chained with ``chain_hook`` (:mod:`geworker.worker._gunicorn`) on every
configure, since a reload (``HUP``) re-reads the config and resets them:

* ``child_exit``: name the exit (:func:`classify_exit`), count it in the
  master's record and drop the worker's snapshot (:mod:`~geworker.master.record`),
  count it in the metrics (:mod:`~geworker.master.metrics`), record a boot
  failure for ``geworker status``, and replace a worker of the current
  generation that gunicorn would not replace (:func:`replace_if_held`);
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

from ..worker import _gunicorn, bootretry, shared
from . import metrics, record

__all__ = ["BOOT_FAILED", "classify_exit", "install", "replace_if_held"]

#: How ``status`` names the exit of a worker that failed to boot and will be retried.
BOOT_FAILED = "boot failed"


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
    if code == bootretry.BOOT_RETRY_EXIT:
        return BOOT_FAILED
    return "normal" if code == 0 else f"exit code {code}"


def replace_if_held(arbiter: Any, worker: Any) -> None:
    """Spawn a replacement for ``worker`` (just reaped) when gunicorn would not.

    gunicorn keeps ``-w`` workers, counting the old workers of a reload that
    still run: while they hold on (see ``Worker._hold_until_replaced``) or
    drain, a new worker that exits (failed to boot, recycled) is not
    replaced, and a reload whose new workers fail would never be retried.
    So when the current generation has fewer than ``-w`` workers and
    gunicorn counts enough, spawn one now; never while the master stops.
    """
    generation = shared.reload_generation()
    if shared.master_stopping() or getattr(worker, "generation", None) != generation:
        return
    workers = _gunicorn.arbiter_workers(arbiter)
    target = _gunicorn.target_workers(arbiter)
    current = sum(1 for w in workers if getattr(w, "generation", None) == generation)
    if len(workers) >= target > current:
        _gunicorn.spawn_extra_worker(arbiter)


def _child_exit(arbiter: Any, worker: Any) -> None:
    label = classify_exit(_gunicorn.caller_wait_status(), bool(worker.aborted))
    shared.release_index(worker)
    try:
        failure = _boot_failure(worker) if label == BOOT_FAILED else None
        record.record_exit(worker.pid, label)
        record.record_boot_failures(failure)
    except Exception as exc:
        print(f"geworker: recording a worker exit failed: {exc}", file=sys.stderr)
    try:
        metrics.count_exit(arbiter, worker, label)
    except Exception as exc:
        print(f"geworker: metrics for a worker exit failed: {exc}", file=sys.stderr)
    try:
        replace_if_held(arbiter, worker)  # last: a new worker's process never returns here
    except Exception as exc:
        print(f"geworker: replacing a worker failed: {exc}", file=sys.stderr)


def _boot_failure(worker: Any) -> dict[str, Any]:
    """What a worker that failed to boot left for the master, or what the master knows of it."""
    failure = bootretry.read_failure(worker.pid)
    if failure is None:  # no run directory, or the worker could not write
        attempt = shared.boot_failures(worker.generation, worker.index)
        failure = {"pid": worker.pid, "index": worker.index, "generation": worker.generation,
                   "reason": "unknown (see the log)", "attempt": attempt,
                   "retry_in": bootretry.retry_delay(attempt)}
    return failure


def _nworkers_changed(arbiter: Any, new_value: int, old_value: int | None) -> None:
    record.record_workers(new_value)


def _on_exit(arbiter: Any) -> None:
    record.remove_master_record()
