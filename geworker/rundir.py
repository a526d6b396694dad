"""The run directory: where an instance keeps the files ``geworker status`` reads.

Every gunicorn instance running geworker has one *run directory*:

* ``$GEWORKER_RUN_DIR`` when set (the ``geworker`` command sets it), else
  ``<working directory>/.geworker/<instance name>``, where the instance name
  is the app and a digest of its listeners (:func:`instance_name`, e.g.
  ``app-server-3f2a1c``): two instances in different directories, of
  different apps, or of one app on different addresses never share one;
* created by the master at first start and, with ``--user``, owned by the
  worker user, since workers write into it after dropping privileges.

What it holds::

    master.json                  master pid, start time, declared listeners,
                                 reload count, worker exit statuses, workers
                                 failing to boot (master)
    workers/<pid>.json           one snapshot per worker, rewritten atomically
                                 on every heartbeat tick, removed at exit
    workers/<pid>.connections.json  written only after a ``connections`` request
    workers/<pid>.boot.json      why a worker failed to boot (read by the master
                                 when it reaps it, see geworker.worker.bootretry)
    connections.request          touched by ``geworker connections``
    gunicorn.ctl                 gunicorn's control socket, unless one was configured
    gunicorn.pid, cli.json       when started by the ``geworker`` command

This module is the format both sides share: where the directory is, the
file names, atomic JSON writes and tolerant reads, and whether the master
that owns a directory still runs. The master writes ``master.json``
(:mod:`geworker.master.record`), each worker its snapshot
(:mod:`geworker.worker.snapshot`), and the ``geworker`` command reads them
(:mod:`geworker.ops.report`). It uses the standard library only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "BASE_DIR",
    "CONNECTIONS_REQUEST",
    "CONTROL_SOCKET",
    "MASTER_FILE",
    "RUN_DIR_ENV",
    "WORKERS_DIR",
    "default_run_dir",
    "instance_addresses",
    "instance_name",
    "is_instance_of",
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
#: The folder of the working directory that holds its instances' run directories.
BASE_DIR = ".geworker"
CONTROL_SOCKET = "gunicorn.ctl"
MASTER_FILE = "master.json"
WORKERS_DIR = "workers"
CONNECTIONS_REQUEST = "connections.request"

#: The run directory of this process tree (set in the master, inherited by workers).
_run_dir: Path | None = None


def slug(app_uri: str) -> str:
    """A file-name-safe form of ``module:object``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", app_uri).strip("-") or "app"


def instance_name(app_uri: str, listener_urls: Iterable[str]) -> str:
    """The name of an instance of ``app_uri`` on ``listener_urls``: ``<slug>-<6 hex digits>``.

    The digits are the start of a SHA-1 over the sorted URLs, so the name is
    the same at every start of the same app on the same addresses, whatever
    their order, and differs when the app or one address differs.
    """
    digest = hashlib.sha1("\n".join(sorted(listener_urls)).encode()).hexdigest()
    return f"{slug(app_uri)}-{digest[:6]}"


def is_instance_of(name: str, app_uri: str) -> bool:
    """True if run directory ``name`` is named for an instance of ``app_uri``.

    Matches :func:`instance_name`'s form and the plain ``<slug>`` of older
    versions, never another app whose slug merely starts the same.
    """
    base = slug(app_uri)
    return name == base or re.fullmatch(re.escape(base) + r"-[0-9a-f]{6}", name) is not None


def instance_addresses(description: Mapping[str, Any], binds: Sequence[str]) -> list[str]:
    """The addresses that name an instance, from the probe's ``description`` of the app.

    The declared listener URLs of a geworker server; for a plain WSGI app,
    which declares none, gunicorn's ``binds``.
    """
    if description.get("kind") == "server":
        return [str(d["url"]) for d in description.get("listeners", [])]
    return [str(b) for b in binds]


def default_run_dir(cwd: str | os.PathLike[str], app_uri: str,
                    listener_urls: Iterable[str]) -> Path:
    """Where an instance of ``app_uri`` on ``listener_urls`` started in ``cwd`` keeps its files.

    ``$GEWORKER_RUN_DIR`` when set, else ``<cwd>/.geworker/<instance name>``.
    """
    env = os.environ.get(RUN_DIR_ENV)
    if env:
        return Path(env).absolute()
    return Path(cwd).absolute() / BASE_DIR / instance_name(app_uri, listener_urls)


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

    What :class:`geworker.Messenger` uses; ``geworker status`` finds
    instances the same way (and lists them when several match).

    Raises:
        ConfigurationError: when none runs, or several do (naming them).
    """
    from .errors import ConfigurationError

    env = os.environ.get(RUN_DIR_ENV)
    if env:
        return Path(env).absolute()
    base = Path(cwd).absolute() / BASE_DIR
    found = []
    for path in sorted(base.glob("*")) if base.is_dir() else []:
        master = read_master(path)
        if (master and (app is None or is_instance_of(path.name, app) or master.get("app") == app)
                and master_alive(int(master.get("pid", 0)))):
            found.append(path)
    if len(found) == 1:
        return found[0]
    what = f"of {app} " if app else ""
    if not found:
        raise ConfigurationError(f"no running geworker instance {what}under {base}")
    raise ConfigurationError(f"several geworker instances {what}run under {base} ("
                             + ", ".join(p.name for p in found) + "): give run_dir=")
