"""What happens when a worker fails to boot after the instance has been up.

At the very first start a worker that cannot boot (the app does not import,
``on_worker_start`` raises) halts gunicorn with exit code 3: nothing was
serving, and a respawn loop would hide the mistake. Once a worker has
served (:func:`geworker.worker.shared.instance_up`), a failure of a new
worker (after a reload, or replacing one that died) must not take the
service down, so instead the worker:

1. counts the failure at its index in the shared memory
   (:func:`~geworker.worker.shared.count_boot_failure`), logs it once with
   its reason, and writes the reason for the master
   (``workers/<pid>.boot.json``, read back by :func:`read_failure` when the
   master reaps it, for ``geworker status``);
2. exits with :data:`BOOT_RETRY_EXIT`, which gunicorn does not treat as a
   boot error, so it does not halt.

The worker that replaces it waits :func:`retry_delay` of the failures
counted so far before it boots (1 s, then doubling, at most
:data:`RETRY_MAX`), so a cause that lasts does not spin. A worker that
serves resets its index's count. Meanwhile the old workers of a reload keep
serving (``Worker._hold_until_replaced``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

from .. import rundir
from ..loader import AppLoadError

__all__ = ["BOOT_RETRY_EXIT", "RETRY_FIRST", "RETRY_MAX", "describe_failure", "failure_path",
           "read_failure", "retry_delay", "write_failure"]

#: A worker's exit code for "failed to boot, retry me" (EX_TEMPFAIL; gunicorn halts on 3 and 4).
BOOT_RETRY_EXIT = 75
#: Seconds the worker after the first failure waits before it boots.
RETRY_FIRST = 1.0
#: The longest wait between two attempts.
RETRY_MAX = 30.0


def retry_delay(failures: int) -> float:
    """Seconds to wait before the next attempt after ``failures`` failed boots in a row."""
    if failures <= 0:
        return 0.0
    return float(min(RETRY_FIRST * 2 ** min(failures - 1, 30), RETRY_MAX))


def describe_failure(exc: BaseException, stage: str) -> str:
    """One line for a boot failure: ``on_worker_start raised RuntimeError: database down``.

    ``stage`` names what was running (``on_worker_start``, ``loading app:server``...);
    a declaration error of the app is its loader's own line.
    """
    if isinstance(exc, AppLoadError):
        return str(exc)
    text = str(exc).strip().splitlines()
    detail = f": {text[0]}" if text else ""
    return f"{stage} raised {type(exc).__name__}{detail}"


def failure_path(pid: int) -> Path | None:
    """Where the worker ``pid`` leaves the reason it failed to boot (None without a run dir)."""
    path = rundir.run_dir()
    return None if path is None else path / rundir.WORKERS_DIR / f"{pid}.boot.json"


def write_failure(pid: int, failure: dict[str, Any]) -> None:
    """Leave ``failure`` (reason, attempt, retry_in...) for the master; never raises."""
    path = failure_path(pid)
    if path is not None:
        with contextlib.suppress(OSError):
            rundir.write_json(path, failure)


def read_failure(pid: int) -> dict[str, Any] | None:
    """What the worker ``pid`` left when it failed to boot, and remove it (master side)."""
    path = failure_path(pid)
    if path is None:
        return None
    data = rundir.read_json(path)
    with contextlib.suppress(OSError):
        os.unlink(path)
    return data if isinstance(data, dict) else None
