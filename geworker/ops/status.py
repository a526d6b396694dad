"""Run directory, per-worker snapshots and the data behind ``geworker status``.

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

Snapshots are taken on the heartbeat, which runs between callbacks: a worker
stuck in a CPU-bound callback stops refreshing its snapshot, and readers show
a live worker with a stale snapshot as *busy* rather than missing. A snapshot
whose pid is no longer a child of the master is never shown.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..transport.state import ConnectionState

if TYPE_CHECKING:
    from ..transport.connection import Connection

__all__ = [
    "RUN_DIR_ENV",
    "SnapshotWriter",
    "classify_exit",
    "collect_connections",
    "collect_status",
    "default_run_dir",
    "format_bytes",
    "format_connections",
    "format_duration",
    "format_status",
    "live_workers",
    "master_alive",
    "prepare_run_dir",
    "read_json",
    "read_master",
    "record_reload",
    "request_connections",
    "run_dir",
    "write_json",
]

RUN_DIR_ENV = "GEWORKER_RUN_DIR"
MASTER_FILE = "master.json"
WORKERS_DIR = "workers"
CONNECTIONS_REQUEST = "connections.request"

#: The run directory of this process tree (set in the master, inherited by workers).
_run_dir: Path | None = None
_master: dict[str, Any] = {}


# -- run directory -----------------------------------------------------------


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


def prepare_run_dir(cfg: Any, app_uri: str, declared: dict[str, Any],
                    warn: Callable[[str], None]) -> Path | None:
    """Create the run directory in the master at first start and record the instance.

    The directory and its ``workers/`` subdirectory are chowned to the worker
    user (``cfg.uid``/``cfg.gid``) when the master runs as root. Never raises:
    without a usable directory ``status`` has no data but the server runs.
    """
    global _run_dir
    path = default_run_dir(cfg.chdir or os.getcwd(), app_uri)
    other = read_master(path)
    if other and other.get("pid") != os.getpid() and master_alive(int(other["pid"])):
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
    _run_dir = path
    _master.clear()
    _master.update({
        "pid": os.getpid(),
        "app": app_uri,
        "name": declared.get("name", app_uri),
        "listeners": declared.get("listeners", []),
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
        "user": [cfg.uid, cfg.gid],
    })
    _save_master()
    return path


def _save_master() -> None:
    if _run_dir is None:
        return
    with contextlib.suppress(OSError):
        write_json(_run_dir / MASTER_FILE, _master)


_configured = False


def setup_master(cfg: Any, app_uri: str, declared: dict[str, Any]) -> None:
    """Master side, at start and on every reload (called by ``master.configure``).

    At start: refuse impossible privilege settings, create the run directory.
    On reload: count it. Both times: hook the fresh config's ``child_exit``,
    ``nworkers_changed`` and ``on_exit`` (a reload re-reads the config, which
    resets the hooks), chaining whatever the user configured.
    """
    global _configured
    if not _configured:
        _configured = True
        problem = privilege_problem(cfg)
        if problem:
            from ..master.configure import fail_boot

            fail_boot(problem)
        prepare_run_dir(cfg, app_uri, declared,
                        lambda msg: print(msg, file=sys.stderr, flush=True))
    else:
        record_reload(cfg)
    install_master_hooks(cfg)


def privilege_problem(cfg: Any) -> str | None:
    """Why ``--user``/``--group`` cannot work here, or None when they can."""
    if os.geteuid() == 0:
        if cfg.uid == 0:
            return None
        # Workers import the app after switching user: fail now, with the reason,
        # rather than in every worker.
        where = _unreadable_by(Path(cfg.chdir or os.getcwd()), cfg.uid, cfg.gid)
        if where is not None:
            return (f"--user {cfg.uid} (group {cfg.gid}) cannot read {where}, where the app "
                    "is imported from: make it readable by that user")
        return None
    if cfg.uid != os.geteuid():
        return (f"--user {cfg.uid} needs the master to run as root (it runs as uid "
                f"{os.geteuid()}); drop --user or start as root")
    if cfg.gid != os.getegid():
        return (f"--group {cfg.gid} needs the master to run as root (it runs as gid "
                f"{os.getegid()}); drop --group or start as root")
    return None


def _unreadable_by(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on ``path`` that ``uid``/``gid`` cannot list, if any."""
    for part in [*reversed(path.absolute().parents), path.absolute()]:
        try:
            st = part.stat()
        except OSError:
            return part
        if st.st_uid == uid:
            bits = st.st_mode >> 6
        elif st.st_gid == gid:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        if bits & 0o5 != 0o5:  # read + search
            return part
    return None


def _hook_marker(func: Any) -> bool:
    return bool(getattr(func, "_geworker_status", False))


def install_master_hooks(cfg: Any) -> None:
    """Chain geworker's bookkeeping in front of the user's gunicorn hooks."""
    user_child_exit = cfg.settings["child_exit"].get()
    if not _hook_marker(user_child_exit):
        def child_exit(arbiter: Any, worker: Any) -> None:
            try:
                record_exit(worker.pid, caller_wait_status(), bool(worker.aborted))
            except Exception as exc:  # bookkeeping must never take the master down
                print(f"geworker: recording a worker exit failed: {exc}", file=sys.stderr)
            user_child_exit(arbiter, worker)

        child_exit._geworker_status = True  # type: ignore[attr-defined]
        cfg.set("child_exit", child_exit)
    user_nworkers = cfg.settings["nworkers_changed"].get()
    if not _hook_marker(user_nworkers):
        def nworkers_changed(arbiter: Any, new_value: int, old_value: int | None) -> None:
            record_workers(new_value)
            user_nworkers(arbiter, new_value, old_value)

        nworkers_changed._geworker_status = True  # type: ignore[attr-defined]
        cfg.set("nworkers_changed", nworkers_changed)
    user_on_exit = cfg.settings["on_exit"].get()
    if not _hook_marker(user_on_exit):
        def on_exit(arbiter: Any) -> None:
            remove_master_record()
            user_on_exit(arbiter)

        on_exit._geworker_status = True  # type: ignore[attr-defined]
        cfg.set("on_exit", on_exit)


def caller_wait_status() -> int | None:
    """The ``waitpid`` status gunicorn's ``reap_workers`` just got.

    gunicorn hands ``child_exit`` the worker but not its exit status; the
    status is a local of the calling ``Arbiter.reap_workers`` frame.
    """
    frame = sys._getframe(1)
    for _ in range(6):
        if frame is None:
            break
        if frame.f_code.co_name == "reap_workers" and "status" in frame.f_locals:
            value = frame.f_locals["status"]
            return value if isinstance(value, int) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


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


def record_exit(pid: int, status: int | None, aborted: bool) -> str:
    """Count a worker exit and drop its snapshot files (master side)."""
    label = classify_exit(status, aborted)
    if _master:
        exits = _master["exits"]
        exits[label] = exits.get(label, 0) + 1
        _save_master()
    if _run_dir is not None:
        for name in (f"{pid}.json", f"{pid}.connections.json"):
            with contextlib.suppress(OSError):
                (_run_dir / WORKERS_DIR / name).unlink()
    return label


def remove_master_record() -> None:
    """Forget the instance when the master exits."""
    if _run_dir is None:
        return
    for name in (MASTER_FILE, CONNECTIONS_REQUEST):
        with contextlib.suppress(OSError):
            (_run_dir / name).unlink()


# -- worker side -------------------------------------------------------------


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


class SnapshotWriter:
    """Writes this worker's snapshot on each heartbeat tick.

    :meth:`write` never raises (a full disk must not kill the worker); the
    first failure is logged, later ones are not.
    """

    def __init__(self, worker: Any, interval: float) -> None:
        self.worker = worker
        self.interval = interval
        self.started = time.time()
        self.closed = _run_dir is None
        self.failed = False
        self.served_request = 0
        self._last = (time.monotonic(), 0)
        self.metrics: Any = None
        try:
            from .metrics import WorkerMetrics

            self.metrics = WorkerMetrics.create(worker)
        except Exception as exc:
            worker.log.warning("geworker: metrics are off: %s", exc)
        if _run_dir is not None:
            self.path = _run_dir / WORKERS_DIR / f"{os.getpid()}.json"
            self.connections_path = self.path.with_suffix(".connections.json")
            self.request_path = _run_dir / CONNECTIONS_REQUEST

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
            write_json(self.path, self.snapshot())
            self._serve_connections_request()
        except Exception as exc:
            if not self.failed:
                self.failed = True
                self.worker.log.warning("geworker: cannot write status snapshot %s: %s",
                                        self.path, exc)

    def snapshot(self) -> dict[str, Any]:
        """The current state of this worker as a JSON-friendly dict."""
        from .. import timers
        from ..stats import counters

        worker = self.worker
        server = worker.server
        now, mono = time.time(), time.monotonic()
        last_mono, last_messages = self._last
        elapsed = mono - last_mono
        qps = (counters.messages_in - last_messages) / elapsed if elapsed > 0 else 0.0
        self._last = (mono, counters.messages_in)
        return {
            "pid": os.getpid(),
            "index": getattr(worker, "index", None),
            "generation": getattr(worker, "generation", None),
            "name": server.name if server is not None else "",
            "listeners": [lnr.url for lnr in server.listeners] if server is not None else [],
            "started": self.started,
            "heartbeat": now,
            "interval": self.interval,
            "rss": _rss(),
            "connections": len(server.connections) if server is not None else 0,
            "timers": timers.count(),
            "counters": counters.as_dict(),
            "qps": round(max(qps, 0.0), 1),
            "state": "idle" if worker.alive else "draining",
        }

    def _serve_connections_request(self) -> None:
        try:
            requested = self.request_path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if requested <= self.served_request or time.time_ns() - requested > 10**10:
            return  # answered already, or too old to have a reader waiting
        self.served_request = requested
        server = self.worker.server
        now, pid = time.time(), os.getpid()
        rows = [describe_connection(c, pid, now) for c in list(server.connections.values())]
        write_json(self.connections_path, {"request": requested, "connections": rows})

    def remove(self) -> None:
        """Delete this worker's files; later :meth:`write` calls do nothing."""
        if self.closed:
            return
        self.closed = True
        for path in (self.path, self.connections_path):
            with contextlib.suppress(OSError):
                path.unlink()


# -- reading (the ``geworker`` command) -------------------------------------


def read_master(path: Path) -> dict[str, Any] | None:
    """The master's record in run directory ``path``, if any."""
    data = read_json(path / MASTER_FILE)
    return data if isinstance(data, dict) else None


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state letter, parent pid) of ``pid``, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return fields[0], int(fields[1])
    except (OSError, IndexError, ValueError):
        return None


def master_alive(pid: int) -> bool:
    """True if ``pid`` runs and looks like a gunicorn/geworker master."""
    stat = _proc_stat(pid)
    if stat is None or stat[0] == "Z":
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"gunicorn" in cmdline or b"geworker" in cmdline


def live_workers(master_pid: int) -> list[int]:
    """The master's live child processes (its workers)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{master_pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in (task / "children").read_text().split())
    return sorted(p for p in pids if (st := _proc_stat(p)) is not None and st[0] != "Z")


def _stale_after(snap: dict[str, Any]) -> float:
    return 2 * float(snap.get("interval") or 1.0) + 1.0


def collect_status(path: Path, now: float | None = None) -> dict[str, Any] | None:
    """Everything ``geworker status`` shows, or None when no master runs.

    Workers are the master's live children: with a fresh snapshot they show
    its state (``idle``/``draining``); with a stale one they are ``busy``
    (stuck in a callback, so they missed their heartbeat); without one they
    are ``starting``.
    """
    master = read_master(path)
    if master is None or not master_alive(int(master["pid"])):
        return None
    now = time.time() if now is None else now
    workers = []
    for pid in live_workers(int(master["pid"])):
        snap = read_json(path / WORKERS_DIR / f"{pid}.json")
        if not isinstance(snap, dict):
            workers.append({"pid": pid, "state": "starting"})
            continue
        if now - float(snap["heartbeat"]) > _stale_after(snap):
            snap["state"] = "busy"
            snap["busy_since"] = snap["heartbeat"]
        workers.append(snap)
    load = os.getloadavg()
    return {
        "run_dir": str(path),
        "time": now,
        "master": master,
        "uptime": now - float(master["started"]),
        "load_average": [round(x, 2) for x in load],
        "versions": _versions(),
        "workers": workers,
        "summary": _summary(workers),
    }


def _versions() -> dict[str, str]:
    import gevent
    import gunicorn

    from .. import __version__

    return {"geworker": __version__, "gunicorn": gunicorn.__version__,
            "gevent": gevent.__version__, "python": sys.version.split()[0]}


def _summary(workers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"processes": 0, "rss": 0, "connections": 0, "send_failures": 0,
                             "timers": 0, "messages": 0, "qps": 0.0}
    for w in workers:
        total["processes"] += 1
        total["rss"] += w.get("rss", 0)
        total["connections"] += w.get("connections", 0)
        total["timers"] += w.get("timers", 0)
        total["qps"] += w.get("qps", 0.0)
        c = w.get("counters") or {}
        total["send_failures"] += c.get("send_failures", 0)
        total["messages"] += c.get("messages_in", 0)
    total["qps"] = round(total["qps"], 1)
    return total


def request_connections(path: Path) -> int:
    """Ask every worker for its connection list; returns the request stamp."""
    request = path / CONNECTIONS_REQUEST
    request.write_text(str(time.time()))
    os.chmod(request, 0o644)
    return request.stat().st_mtime_ns


def collect_connections(path: Path, stamp: int, timeout: float) -> dict[str, Any] | None:
    """Wait (up to ``timeout`` s) for every live worker to answer a request.

    Returns ``{"connections": [...], "missing": [pids]}``; workers that did
    not answer in time (busy in a callback) are listed in ``missing``.
    """
    master = read_master(path)
    if master is None or not master_alive(int(master["pid"])):
        return None
    deadline = time.monotonic() + timeout
    while True:
        pids = live_workers(int(master["pid"]))
        answers: dict[int, list[dict[str, Any]]] = {}
        for pid in pids:
            data = read_json(path / WORKERS_DIR / f"{pid}.connections.json")
            if isinstance(data, dict) and data.get("request", 0) >= stamp:
                answers[pid] = data["connections"]
        missing = [p for p in pids if p not in answers]
        if not missing or time.monotonic() > deadline:
            rows = [row for pid in sorted(answers) for row in answers[pid]]
            return {"connections": rows, "missing": missing}
        time.sleep(0.05)


# -- formatting --------------------------------------------------------------


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5K``; the unit is K, M or G (powers of 1024)."""
    for unit in ("B", "K", "M", "G"):
        if abs(n) < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}G"


def format_duration(seconds: float) -> str:
    """``93784`` -> ``1d 2h 3m 4s``."""
    s = int(max(seconds, 0))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{s}s")
    return " ".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


PROCESS_COLUMNS = ["pid", "memory", "listening", "name", "connections", "send_fail", "timers",
                   "total_request", "qps", "status", "age", "heartbeat"]
CONNECTION_COLUMNS = ["pid", "cid", "trans", "protocol", "local", "remote", "bytes_r",
                      "bytes_w", "send_q", "state", "age"]


def format_status(data: dict[str, Any], qps: dict[int, float] | None = None) -> str:
    """The human-readable ``geworker status`` report.

    Layout (one value per column, two spaces between columns, so scripts can
    split it; ``--json`` is the stable interface)::

        ----GLOBAL STATUS----
        geworker/0.1.0  gunicorn/27.0.1  gevent/26.9.0  Python/3.11.7
        start time: 2026-11-26 14:00:00   uptime: 1h 2m 3s   load average: 0.1, 0.2, 0.3
        app: app:server   server: echo   workers: 2   processes: 2   reloads: 0
        exit_status            exit_count
        normal                 2
        ----PROCESS STATUS----
        pid  memory  listening  name  connections  ...  status  age  heartbeat
        ...
        Summary  ...

    Args:
        qps: per-pid rates measured by the caller (``status -d``); the
            snapshot's own one-tick rate is used otherwise.
    """
    master = data["master"]
    v = data["versions"]
    lines = ["----GLOBAL STATUS----",
             f"geworker/{v['geworker']}  gunicorn/{v['gunicorn']}  gevent/{v['gevent']}  "
             f"Python/{v['python']}",
             f"start time: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(master['started']))}"
             f"   uptime: {format_duration(data['uptime'])}"
             f"   load average: {', '.join(str(x) for x in data['load_average'])}",
             f"app: {master['app']}   server: {master['name']}   workers: {master['workers']}"
             f"   processes: {len(data['workers'])}   reloads: {master['reloads']}",
             f"run dir: {data['run_dir']}   master pid: {master['pid']}"]
    exits = sorted(master.get("exits", {}).items())
    lines += _table(["exit_status", "exit_count"], [[k, str(n)] for k, n in exits])
    lines.append("----PROCESS STATUS----")
    rows = []
    now = data["time"]
    for w in data["workers"]:
        if "heartbeat" not in w:
            rows.append([str(w["pid"])] + ["-"] * 8 + [f"[{w['state']}]", "-", "-"])
            continue
        rate = (qps or {}).get(w["pid"], w.get("qps", 0.0))
        listening = ",".join(w["listeners"]) or "-"
        rows.append([str(w["pid"]), format_bytes(w["rss"]), listening, w["name"] or "-",
                     str(w["connections"]), str(w["counters"]["send_failures"]),
                     str(w["timers"]), str(w["counters"]["messages_in"]), f"{rate:.1f}",
                     f"[{w['state']}]", format_duration(now - w["started"]),
                     f"{now - w['heartbeat']:.1f}s ago"])
    s = data["summary"]
    total_qps = sum(qps.values()) if qps else s["qps"]
    rows.append(["Summary", format_bytes(s["rss"]), "-", "-", str(s["connections"]),
                 str(s["send_failures"]), str(s["timers"]), str(s["messages"]),
                 f"{total_qps:.1f}", "[Summary]", "-", "-"])
    lines += _table(PROCESS_COLUMNS, rows)
    return "\n".join(lines)


def format_connections(data: dict[str, Any]) -> str:
    """The human-readable ``geworker connections`` table."""
    rows = [[str(c["pid"]), str(c["id"]), c["transport"], c["protocol"], c["local"],
             c["remote"], str(c["bytes_read"]), str(c["bytes_written"]), str(c["send_queue"]),
             c["state"], f"{c['age']:.1f}s"] for c in data["connections"]]
    lines = _table(CONNECTION_COLUMNS, rows)
    if data["missing"]:
        lines.append("busy (no answer in time): "
                     + " ".join(str(p) for p in data["missing"]))
    return "\n".join(lines)
