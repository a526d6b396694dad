"""The master's record in the run directory: ``master.json``, and its control socket.

Created at first start together with the run directory (see
:mod:`geworker.rundir`; its name comes from the app and the addresses it
listens on), then updated from the master's hooks: reloads
(``HUP``), the target number of workers (``TTIN``/``TTOU``), worker exits
by status and the workers that failed to boot and wait to be retried
(``boot_failures``); removed when the master exits. ``geworker status`` shows it.
Every function here runs in the master and never raises for a file it
cannot write: without a run directory ``status`` has no data but the
server runs.

gunicorn's default control socket (``$XDG_RUNTIME_DIR/gunicorn.ctl`` or
``~/.gunicorn/gunicorn.ctl``) is one per user: a second instance takes it
over from the first. The master moves it into the run directory, unless
``control_socket`` was configured.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import rundir
from ..rundir import CONNECTIONS_REQUEST, CONTROL_SOCKET, MASTER_FILE, RUN_DIR_ENV, WORKERS_DIR
from ..worker import _gunicorn, shared

__all__ = ["place_control_socket", "prepare_run_dir", "record_boot_failures", "record_exit",
           "record_reload", "record_workers", "remove_master_record"]

#: The longest path a Unix socket can bind on Linux (``sun_path`` less its NUL).
MAX_SOCKET_PATH = 107

_master: dict[str, Any] = {}


def prepare_run_dir(cfg: Any, app_uri: str, declared: dict[str, Any],
                    warn: Callable[[str], None]) -> Path | None:
    """Create the run directory in the master at first start and record the instance.

    The directory is ``$GEWORKER_RUN_DIR``, else named for the app and the
    addresses it listens on (:func:`geworker.rundir.instance_name`): the
    declared listeners, or gunicorn's binds for a plain WSGI app. It and its
    ``workers/`` subdirectory are chowned to the worker user
    (``cfg.uid``/``cfg.gid``) when the master runs as root. Never raises:
    without a usable directory ``status`` has no data but the server runs.
    """
    addresses = rundir.instance_addresses(declared, list(cfg.bind))
    path = rundir.default_run_dir(cfg.chdir or os.getcwd(), app_uri, addresses)
    other = rundir.read_master(path)
    if other and other.get("pid") != os.getpid() and rundir.master_alive(int(other["pid"])):
        warn(f"geworker: run directory {path} belongs to the running master "
             f"{other['pid']}; set {RUN_DIR_ENV} to give this instance its own")
        return None
    try:
        workers = path / WORKERS_DIR
        workers.mkdir(parents=True, exist_ok=True)
        for stale in workers.iterdir():  # left by a previous run that was killed
            stale.unlink()
        for p in (path, workers):
            os.chmod(p, 0o755)
            if os.geteuid() == 0 and (cfg.uid, cfg.gid) != (0, 0):
                os.chown(p, cfg.uid, cfg.gid)
    except OSError as exc:
        warn(f"geworker: no run directory ({exc}); 'geworker status' will have no data")
        return None
    rundir.set_run_dir(path)
    place_control_socket(cfg)
    _master.clear()
    _master.update({
        "pid": os.getpid(),
        "app": app_uri,
        "instance": path.name,
        "name": declared.get("name", app_uri),
        "listeners": declared.get("listeners", []),
        "bind": list(cfg.bind),
        "started": time.time(),
        "cwd": str(cfg.chdir or os.getcwd()),
        "pidfile": os.path.abspath(cfg.pidfile) if cfg.pidfile else None,
        "control_socket": (None if cfg.control_socket_disable
                           else os.path.abspath(cfg.control_socket)),
        "pythonpath": cfg.pythonpath or "",
        "graceful_timeout": cfg.graceful_timeout,
        "workers": cfg.workers,
        "reloads": 0,
        "exits": {},
        "boot_failures": {},
        "user": [cfg.uid, cfg.gid],
    })
    _save_master()
    return path


def place_control_socket(cfg: Any) -> None:
    """Put gunicorn's control socket in the run directory if it is still gunicorn's default.

    Runs before gunicorn creates the socket (the arbiter starts its control
    server after the first workers) and again on every reload, which re-reads
    the config. A path too long for a Unix socket gets a short name in
    gunicorn's default folder instead, still one per run directory. An
    explicit ``control_socket`` or ``--no-control-socket`` is left alone.
    """
    path = rundir.run_dir()
    if (path is None or cfg.control_socket_disable
            or not _gunicorn.setting_is_default(cfg, "control_socket")):
        return
    socket_path = str(path / CONTROL_SOCKET)
    if len(os.fsencode(socket_path)) > MAX_SOCKET_PATH:
        digest = hashlib.sha1(os.fsencode(path)).hexdigest()[:12]
        folder = os.path.dirname(_gunicorn.setting_default(cfg, "control_socket"))
        socket_path = os.path.join(folder, f"geworker-{digest}.ctl")
    cfg.set("control_socket", socket_path)


def _save_master() -> None:
    path = rundir.run_dir()
    if path is None:
        return
    with contextlib.suppress(OSError):
        rundir.write_json(path / MASTER_FILE, _master)


def record_reload(cfg: Any) -> None:
    """Count a reload (``HUP``) in the master's record."""
    if _master:
        _master["reloads"] += 1
        _master["workers"] = cfg.workers
        _save_master()


def record_workers(count: int) -> None:
    """Record the target number of workers (``TTIN``/``TTOU`` change it)."""
    if _master:
        _master["workers"] = count
        _save_master()


def record_exit(pid: int, label: str) -> None:
    """Count a worker exit by its label (see ``hooks.classify_exit``), drop its snapshot files."""
    if _master:
        exits = _master["exits"]
        exits[label] = exits.get(label, 0) + 1
        _save_master()
    path = rundir.run_dir()
    if path is not None:
        for name in (f"{pid}.json", f"{pid}.connections.json", f"{pid}.boot.json"):
            with contextlib.suppress(OSError):
                (path / WORKERS_DIR / name).unlink()


def record_boot_failures(failure: dict[str, Any] | None) -> None:
    """Keep the boot failure a worker left (see ``worker.bootretry``); forget resolved ones.

    ``boot_failures`` maps a worker index to its latest failure: the
    generation, the reason, the attempt and ``retry_at`` (when the worker
    that replaces it boots). An entry goes once a worker at that index served
    (the shared memory's count for it is back to 0). Called on every worker
    exit, with ``failure`` None unless the worker failed to boot.
    """
    if not _master:
        return
    failures: dict[str, Any] = _master.setdefault("boot_failures", {})
    changed = False
    if failure is not None:
        now = time.time()
        key = str(failure["index"])
        previous = failures.get(key) or {}
        same = previous.get("generation") == failure.get("generation")
        failures[key] = {**failure, "retry_at": now + float(failure.get("retry_in", 0)),
                         "since": previous.get("since", now) if same else now}
        changed = True
    for key, entry in list(failures.items()):
        if not shared.boot_failures(int(entry.get("generation", 0)), int(entry.get("index", 0))):
            del failures[key]
            changed = True
    if changed:
        _save_master()


def remove_master_record() -> None:
    """Forget the instance when the master exits."""
    path = rundir.run_dir()
    if path is None:
        return
    for name in (MASTER_FILE, CONNECTIONS_REQUEST):
        with contextlib.suppress(OSError):
            (path / name).unlink()
