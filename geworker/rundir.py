"""The run directory: where an instance keeps the files ``geworker status`` reads.

Every gunicorn instance running geworker has one *run directory*:

* ``$GEWORKER_RUN_DIR`` when set (the ``geworker`` command sets it), else
  ``<working directory>/.geworker/<app>``, so two instances in different
  directories (or of different apps) never share one;
* created by the master at first start and, with ``--user``, owned by the
  worker user, since workers write into it after dropping privileges.

What it holds::

    master.json                  master pid, start time, declared listeners,
                                 reload count, worker exit statuses (master)
    workers/<pid>.json           one snapshot per worker, rewritten atomically
                                 on every heartbeat tick, removed at exit
    workers/<pid>.connections.json  written only after a ``connections`` request
    connections.request          touched by ``geworker connections``
    gunicorn.pid, gunicorn.ctl   when started by the ``geworker`` command

This module is the format both sides share: where the directory is, the
file names, atomic JSON writes and tolerant reads, and whether the master
that owns a directory still runs. The master writes ``master.json``
(:mod:`geworker.master.record`), each worker its snapshot
(:mod:`geworker.worker.snapshot`), and the ``geworker`` command reads them
(:mod:`geworker.ops.report`). It uses the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "CONNECTIONS_REQUEST",
    "MASTER_FILE",
    "RUN_DIR_ENV",
    "WORKERS_DIR",
    "default_run_dir",
    "master_alive",
    "proc_stat",
    "read_json",
    "read_master",
    "run_dir",
    "set_run_dir",
    "slug",
    "write_json",
]

RUN_DIR_ENV = "GEWORKER_RUN_DIR"
MASTER_FILE = "master.json"
WORKERS_DIR = "workers"
CONNECTIONS_REQUEST = "connections.request"

#: The run directory of this process tree (set in the master, inherited by workers).
_run_dir: Path | None = None


def slug(app_uri: str) -> str:
    """A file-name-safe form of ``module:object``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", app_uri).strip("-") or "app"


def default_run_dir(cwd: str | os.PathLike[str], app_uri: str) -> Path:
    """Where an instance of ``app_uri`` started in ``cwd`` keeps its run files."""
    env = os.environ.get(RUN_DIR_ENV)
    if env:
        return Path(env).absolute()
    return Path(cwd).absolute() / ".geworker" / slug(app_uri)


def run_dir() -> Path | None:
    """This instance's run directory, or None when it could not be created."""
    return _run_dir


def set_run_dir(path: Path | None) -> None:
    """Record the run directory the master prepared (workers inherit it by fork)."""
    global _run_dir
    _run_dir = path


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON atomically (temp file + ``os.replace``)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, separators=(",", ":"))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_json(path: Path) -> Any:
    """The JSON content of ``path``, or None if it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_master(path: Path) -> dict[str, Any] | None:
    """The master's record in run directory ``path``, if any."""
    data = read_json(path / MASTER_FILE)
    return data if isinstance(data, dict) else None


def proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of ``pid``, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def master_alive(pid: int) -> bool:
    """True if ``pid`` runs and looks like a gunicorn/geworker master."""
    stat = proc_stat(pid)
    if stat is None or stat[0] == "Z":
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"gunicorn" in cmdline or b"geworker" in cmdline


def find_instance(cwd: str | os.PathLike[str], app: str | None) -> Path:
    """The run directory of the one running instance (of ``app``) started in ``cwd``.

    Raises:
        ConfigurationError: when none runs, or several do (naming them).
    """
    from .errors import ConfigurationError

    env = os.environ.get(RUN_DIR_ENV)
    if env:
        return Path(env).absolute()
    base = Path(cwd).absolute() / ".geworker"
    prefix = slug(app) if app else ""
    found = []
    for path in sorted(base.glob("*")) if base.is_dir() else []:
        if prefix and not (path.name == prefix or path.name.startswith(prefix + "-")):
            continue
        master = read_master(path)
        if master and master_alive(int(master.get("pid", 0))):
            found.append(path)
    if len(found) == 1:
        return found[0]
    what = f"of {app} " if app else ""
    if not found:
        raise ConfigurationError(f"no running geworker instance {what}under {base}")
    raise ConfigurationError(f"several geworker instances {what}run under {base}: "
                             + ", ".join(p.name for p in found) + "; give run_dir=")
