"""The ``geworker`` command: Workerman-style operations on top of gunicorn.

::

    geworker start APP [-d] [--run-dir DIR] [--prometheus HOST:PORT] [gunicorn options]
    geworker stop [APP] [-g] [--wait SECONDS]
    geworker restart [APP] [-d] [--graceful] [gunicorn options]
    geworker reload [APP]
    geworker status [APP] [-d] [--json]
    geworker connections [APP] [--json]

``start`` runs gunicorn itself, in this process, through gunicorn's
application API (``-k geworker.Worker`` unless ``-k`` is given); ``-d`` uses
gunicorn's ``--daemon`` and waits until the workers serve. Every other
command talks to the running master: signals from gunicorn's vocabulary and
the files of the instance's run directory (see :mod:`geworker.rundir`).

Each instance has its own run directory, ``./.geworker/<app>-<6 hex digits>``
(the digits name its listeners, see :func:`geworker.rundir.instance_name`),
or ``$GEWORKER_RUN_DIR``. ``start`` computes it as the master does, so a
second ``start`` of the same app on the same addresses finds the first.
The other commands use ``--run-dir`` if given, else the live instance of APP
(of any app without APP) under ``./.geworker``; when several match they list
them and exit 2. Its pid file is ``<run dir>/gunicorn.pid`` unless ``-p`` was
given at start, and its control socket ``<run dir>/gunicorn.ctl`` unless one
was configured, so instances never interfere. Their output starts with the
instance they talk to.

Exit codes: 0 success, 1 failure (start failed, stop failed after N s, reload
refused), 2 usage error, 3 not running, 4 already running.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gunicorn.app.wsgiapp import WSGIApplication

from .. import rundir
from ..master.probe import ProbeError, probe_app
from ..worker import _gunicorn
from . import report

__all__ = ["EXIT_ALREADY_RUNNING", "EXIT_FAILED", "EXIT_NOT_RUNNING", "GeworkerApplication",
           "main"]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
EXIT_ALREADY_RUNNING = 4

#: How ``start`` and ``restart`` describe the arguments that go to gunicorn.
START_ARGUMENTS = """{what}

positional arguments:
  APP                   module:server to run, for example app:server
  gunicorn options      any gunicorn option, for example -w 4 (gunicorn --help)"""

CLI_FILE = "cli.json"
PID_FILE = "gunicorn.pid"
LOG_FILE = "geworker.log"


class GeworkerApplication(WSGIApplication):  # type: ignore[misc]
    """gunicorn's WSGI application runner, fed with the ``geworker start`` options."""

    def __init__(self, gunicorn_args: Sequence[str], ready_fd: int | None = None) -> None:
        self.gunicorn_args = list(gunicorn_args)
        self.ready_fd = ready_fd
        super().__init__("%(prog)s start [OPTIONS] APP_MODULE:SERVER", prog="geworker")

    def load_config(self) -> None:
        """Parse the gunicorn options given after ``geworker start`` (on every reload too)."""
        saved = sys.argv
        sys.argv = [saved[0], *self.gunicorn_args]
        try:
            super().load_config()
        finally:
            sys.argv = saved
        if self.ready_fd is not None:
            _gunicorn.chain_hook(self.cfg, "when_ready", self._when_ready)

    def _when_ready(self, arbiter: Any) -> None:
        self._signal_ready()

    def _signal_ready(self) -> None:
        """Tell ``start -d`` the master is up (it sees EOF without it if the start failed)."""
        if self.ready_fd is not None:
            fd, self.ready_fd = self.ready_fd, None
            with contextlib.suppress(OSError):
                os.write(fd, b"R")
            os.close(fd)


class Instance:
    """What the command knows about one instance: its run directory and master."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.cli = rundir.read_json(run_dir / CLI_FILE) or {}
        self.master = rundir.read_master(run_dir) or {}

    @property
    def pidfile(self) -> Path:
        """The pid file gunicorn writes (``-p``, or the run directory's default)."""
        return Path(self.cli.get("pidfile") or self.master.get("pidfile")
                    or self.run_dir / PID_FILE)

    def pid(self) -> int | None:
        """The live master's pid, from the pid file (else the master's record)."""
        candidates = []
        with contextlib.suppress(OSError, ValueError):
            candidates.append(int(self.pidfile.read_text().strip()))
        if self.master.get("pid"):
            candidates.append(int(self.master["pid"]))
        for pid in candidates:
            if rundir.master_alive(pid):
                return pid
        return None

    @property
    def app(self) -> str:
        """The ``module:object`` this instance runs."""
        return str(self.cli.get("app") or self.master.get("app") or self.run_dir.name)

    def addresses(self) -> list[str]:
        """Where it listens: the declared listener URLs, else gunicorn's binds."""
        urls = [str(d["url"]) for d in self.master.get("listeners", []) if "url" in d]
        return urls or [str(b) for b in self.master.get("bind", [])]


# -- locating an instance ------------------------------------------------------


def _instance_dirs(base: Path, app: str | None) -> list[Path]:
    """The run directories under ``base`` that record an instance (of ``app`` when given)."""
    found = []
    for path in sorted(base.glob("*")):
        if not ((path / CLI_FILE).exists() or (path / rundir.MASTER_FILE).exists()):
            continue
        if app is None or rundir.is_instance_of(path.name, app) or Instance(path).app == app:
            found.append(path)
    return found


def locate(app: str | None, run_dir: str | None) -> Path | None:
    """The run directory the user means (see module doc), or None if there is none.

    Raises:
        SystemExit: with the list of candidates when several instances match.
    """
    if run_dir:
        return Path(run_dir).absolute()
    if os.environ.get(rundir.RUN_DIR_ENV):
        return Path(os.environ[rundir.RUN_DIR_ENV]).absolute()
    base = Path.cwd() / rundir.BASE_DIR
    found = _instance_dirs(base, app)
    running = [p for p in found if Instance(p).pid() is not None]
    choices = running or found
    if len(choices) <= 1:
        return choices[0] if choices else None
    lines = [f"geworker: {len(choices)} instances{f' of {app}' if app else ''} under {base}; "
             "pick one with --run-dir:"]
    for path in choices:
        inst = Instance(path)
        pid = inst.pid()
        lines.append(f"  {path}  {f'master pid {pid}' if pid else 'not running'}  "
                     f"{' '.join(inst.addresses()) or '-'}")
    print("\n".join(lines), file=sys.stderr, flush=True)
    sys.exit(EXIT_USAGE)


def _fail(message: str, code: int = EXIT_FAILED) -> None:
    print(f"geworker: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def _running(args: argparse.Namespace) -> tuple[Instance, int]:
    app = getattr(args, "app", None)
    path = locate(app, args.run_dir)
    if path is None:
        base = Path.cwd() / rundir.BASE_DIR
        _fail(f"{app} is not running (no instance under {base})" if app
              else f"not running: no geworker instance under {base}", EXIT_NOT_RUNNING)
        raise AssertionError("unreachable")
    inst = Instance(path)
    pid = inst.pid()
    if pid is None:
        _fail(f"{app or inst.app} is not running (run dir {inst.run_dir})", EXIT_NOT_RUNNING)
        raise AssertionError("unreachable")
    return inst, pid


# -- start ---------------------------------------------------------------------


def _gunicorn_config() -> Any:
    from gunicorn.config import Config

    return Config("%(prog)s", prog="geworker start")


def _gunicorn_parser() -> argparse.ArgumentParser:
    return _gunicorn_config().parser()  # type: ignore[no-any-return]


def _has(words: Sequence[str], *flags: str) -> bool:
    for w in words:
        for flag in flags:
            if w == flag or (flag.startswith("--") and w.startswith(flag + "=")):
                return True
            if not flag.startswith("--") and w.startswith(flag) and len(w) > len(flag):
                return True
    return False


def _addresses(app: str, cwd: Path, parsed: argparse.Namespace) -> list[str]:
    """The addresses the master will name the instance by (see ``record.prepare_run_dir``).

    The app is imported in a subprocess for its declared listeners; a plain
    WSGI app has gunicorn's ``--bind``. An app that does not import gets no
    addresses: its start fails in the master, which says why.
    """
    pythonpath = [p.strip() for p in (parsed.pythonpath or "").split(",") if p.strip()]
    try:
        description = probe_app(app, str(cwd), pythonpath)
    except ProbeError:
        return []
    binds = parsed.bind or _gunicorn.setting_default(_gunicorn_config(), "bind")
    return rundir.instance_addresses(description, binds)


def start(args: argparse.Namespace, gunicorn_args: list[str]) -> int:
    """``geworker start``: run gunicorn here, or detached with ``-d``."""
    parsed = _gunicorn_parser().parse_args(gunicorn_args)
    app = parsed.args[0] if parsed.args else None
    if app is None:
        _fail("start needs the application, e.g. geworker start app:server", EXIT_USAGE)
        return EXIT_USAGE
    cwd = Path(parsed.chdir or os.getcwd()).absolute()
    given = args.run_dir or os.environ.get(rundir.RUN_DIR_ENV)
    run_dir = (Path(given).absolute() if given
               else rundir.default_run_dir(cwd, app, _addresses(app, cwd, parsed)))
    inst = Instance(run_dir)
    running = inst.pid()
    if running is not None:
        _fail(f"{app} is already running (pid {running}, run dir {run_dir})",
              EXIT_ALREADY_RUNNING)
    run_dir.mkdir(parents=True, exist_ok=True)
    extra: list[str] = []
    if not _has(gunicorn_args, "-k", "--worker-class"):
        extra += ["-k", "geworker.Worker"]
    pidfile = parsed.pidfile
    if not pidfile:
        pidfile = str(run_dir / PID_FILE)
        extra += ["--pid", pidfile]
    log_file = None
    if args.daemon:
        extra.append("--daemon")
        if not _has(gunicorn_args, "--error-logfile", "--log-file"):
            log_file = str(run_dir / LOG_FILE)
            extra += ["--error-logfile", log_file]
        else:
            log_file = parsed.errorlog
        if not _has(gunicorn_args, "--capture-output"):
            extra.append("--capture-output")
    full_args = extra + list(gunicorn_args)
    record = {"app": app, "cwd": str(cwd), "pidfile": str(Path(cwd, pidfile)),
              "args": list(gunicorn_args), "daemon": bool(args.daemon),
              "log_file": log_file, "prometheus": args.prometheus}
    rundir.write_json(run_dir / CLI_FILE, record)
    os.environ[rundir.RUN_DIR_ENV] = str(run_dir)
    if args.prometheus:
        from ..worker.metrics import PROMETHEUS_ENV

        os.environ[PROMETHEUS_ENV] = args.prometheus
    if not args.daemon:
        GeworkerApplication(full_args).run()
        return 0
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        log_offset = os.path.getsize(log_file) if log_file else 0
    except OSError:
        log_offset = 0
    # The detached master holds the pipe's write end until it is ready: EOF
    # without a byte means it died while starting (bad app, port in use...).
    ready_r, ready_w = os.pipe()
    child = os.fork()
    if child == 0:
        # gunicorn's --daemon forks twice more and detaches. Workers are forked
        # from this stack too, so let their SystemExit pass untouched.
        os.close(ready_r)
        GeworkerApplication(full_args, ready_fd=ready_w).run()
        sys.exit(0)
    os.close(ready_w)
    os.waitpid(child, 0)
    try:
        return _wait_started(Instance(run_dir), log_file, log_offset, args.wait, ready_r)
    finally:
        os.close(ready_r)


def _wait_started(inst: Instance, log_file: str | None, log_offset: int,
                  timeout: float, ready_fd: int) -> int:
    """After ``start -d``: wait for the master and all its workers, or report why not."""
    deadline = time.monotonic() + timeout
    seen_master = False
    master_ready = False
    while time.monotonic() < deadline:
        if not master_ready and select.select([ready_fd], [], [], 0)[0]:
            if os.read(ready_fd, 1) != b"R":
                break  # the master exited before it was ready
            master_ready = True
        inst = Instance(inst.run_dir)
        pid = inst.pid()
        if pid is not None:
            seen_master = True
            data = report.collect_status(inst.run_dir)
            if data and data["workers"] and all(w["state"] != "starting"
                                                for w in data["workers"]) \
                    and len(data["workers"]) >= int(data["master"]["workers"]):
                print(f"geworker: {inst.app} started in daemon mode (pid {pid}, "
                      f"{len(data['workers'])} workers, log {log_file}, run dir {inst.run_dir})")
                return 0
        elif seen_master or master_ready:
            break
        time.sleep(0.1)
    print(f"geworker: {inst.app} did not start; last lines of {log_file}:", file=sys.stderr)
    print(_tail(log_file, 15, log_offset), file=sys.stderr)
    return EXIT_FAILED


def _tail(path: str | None, lines: int, offset: int = 0) -> str:
    """The last ``lines`` lines of ``path`` written after byte ``offset``."""
    if not path:
        return "(no log file)"
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return "\n".join(text.splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"


# -- stop / restart ------------------------------------------------------------


def stop(args: argparse.Namespace) -> int:
    """``geworker stop``: ``QUIT`` (quick), or ``TERM`` with ``-g`` (drain first)."""
    inst, pid = _running(args)
    sig = signal.SIGTERM if args.graceful else signal.SIGQUIT
    graceful_timeout = float(inst.master.get("graceful_timeout", 30))
    wait = args.wait if args.wait is not None else (
        graceful_timeout + 10 if args.graceful else 10.0)
    how = "gracefully" if args.graceful else "quickly"
    print(report.format_instance(inst.run_dir, pid))
    print(f"geworker: stopping {inst.app} {how} (pid {pid}, {sig.name})", flush=True)
    os.kill(pid, sig)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not rundir.master_alive(pid):
            print(f"geworker: {inst.app} stopped")
            return 0
        time.sleep(0.05)
    _fail(f"stop failed after {wait:.0f} s: pid {pid} is still running", EXIT_FAILED)
    return EXIT_FAILED


def restart(args: argparse.Namespace, gunicorn_args: list[str]) -> int:
    """``geworker restart``: stop if running, then start with the same options."""
    app = None
    if gunicorn_args:
        parsed = _gunicorn_parser().parse_args(gunicorn_args)
        app = parsed.args[0] if parsed.args else None
    path = locate(app, args.run_dir)
    inst = Instance(path) if path is not None else None
    if not gunicorn_args:  # same options as last time, daemon mode included
        if inst is None:
            _fail("restart needs the start options (no instance under "
                  f"{Path.cwd() / rundir.BASE_DIR})", EXIT_USAGE)
            return EXIT_USAGE
        gunicorn_args = list(inst.cli.get("args") or [])
        args.daemon = args.daemon or bool(inst.cli.get("daemon"))
        args.prometheus = args.prometheus or inst.cli.get("prometheus")
        if not gunicorn_args:
            _fail("restart needs the start options (none recorded in "
                  f"{inst.run_dir / CLI_FILE})", EXIT_USAGE)
    if inst is None:
        return start(args, gunicorn_args)
    if inst.pid() is not None:
        code = stop(argparse.Namespace(app=inst.app, run_dir=str(inst.run_dir),
                                       graceful=args.graceful, wait=None))
        if code:
            return code
    args.run_dir = str(inst.run_dir)  # the same instance, even if its listeners changed
    return start(args, gunicorn_args)


# -- reload --------------------------------------------------------------------


def _master_environ(pid: int) -> dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return dict(os.environ)
    env = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.partition(b"=")
        if sep:
            env[key.decode(errors="replace")] = value.decode(errors="replace")
    return env


def reload(args: argparse.Namespace) -> int:
    """``geworker reload``: check the app in a subprocess, then ``HUP`` the master."""
    inst, pid = _running(args)
    print(report.format_instance(inst.run_dir, pid), flush=True)
    if not inst.master:
        _fail(f"no master record in {inst.run_dir}; send HUP yourself to skip the check")
    cwd = str(inst.master.get("cwd") or inst.cli.get("cwd") or os.getcwd())
    pythonpath = [p for p in str(inst.master.get("pythonpath") or "").split(",") if p]
    try:
        declared = probe_app(inst.app, cwd, pythonpath, environ=_master_environ(pid))
    except ProbeError as exc:
        _fail(f"reload refused, nothing was sent; the running workers keep serving.\n{exc}")
    old = [(d["url"], d["bind"]) for d in inst.master.get("listeners", [])]
    new = [(d["url"], d["bind"]) for d in declared.get("listeners", [])]
    if old != new:
        _fail("reload refused, nothing was sent: the app now declares listeners "
              f"{[u for u, _ in new]} instead of {[u for u, _ in old]}; "
              "changing listeners needs 'geworker restart'")
    before = int(inst.master.get("reloads", 0))
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        master = rundir.read_master(inst.run_dir) or {}
        if int(master.get("reloads", 0)) > before:
            print(f"geworker: {inst.app} reloading (pid {pid}, reload #{before + 1})")
            return 0
        time.sleep(0.05)
    print(f"geworker: sent HUP to {pid}, but the master has not reloaded yet", file=sys.stderr)
    return EXIT_FAILED


# -- status / connections ------------------------------------------------------


def show_status(args: argparse.Namespace) -> int:
    """``geworker status``: the global and per-process report (``-d``: refresh every second)."""
    inst, _ = _running(args)
    iterations = args.iterations if args.daemon else 1
    previous: dict[int, tuple[float, int]] = {}
    n = 0
    while True:
        data = report.collect_status(inst.run_dir)
        if data is None:
            _fail(f"{inst.app} is not running", EXIT_NOT_RUNNING)
            return EXIT_NOT_RUNNING
        qps: dict[int, float] | None = None
        if args.daemon:
            qps = {}
            for w in data["workers"]:
                total = (w.get("counters") or {}).get("messages_in", 0)
                if w["pid"] in previous:
                    t0, m0 = previous[w["pid"]]
                    qps[w["pid"]] = (total - m0) / max(data["time"] - t0, 1e-6)
                previous[w["pid"]] = (data["time"], total)
        if args.json:
            if qps is not None:
                for w in data["workers"]:
                    w["qps"] = round(qps.get(w["pid"], w.get("qps", 0.0)), 1)
            print(json.dumps(data), flush=True)
        else:
            if args.daemon and sys.stdout.isatty():
                print("\033[H\033[2J", end="")
            print(report.format_instance(inst.run_dir, int(data["master"]["pid"])))
            print(report.format_status(data, qps or None), flush=True)
        n += 1
        if not args.daemon or (iterations and n >= iterations):
            return 0
        try:
            time.sleep(1.0)
        except KeyboardInterrupt:
            return 0


def show_connections(args: argparse.Namespace) -> int:
    """``geworker connections``: every open connection of every worker."""
    inst, pid = _running(args)
    stamp = report.request_connections(inst.run_dir)
    data = report.collect_connections(inst.run_dir, stamp, timeout=args.wait)
    if data is None:
        _fail(f"{inst.app} is not running", EXIT_NOT_RUNNING)
        return EXIT_NOT_RUNNING
    if args.json:
        print(json.dumps(data))
    else:
        print(report.format_instance(inst.run_dir, pid))
        print(report.format_connections(data))
    return 0


# -- argument parsing ----------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``geworker`` argument parser (gunicorn options pass through ``start``)."""
    parser = argparse.ArgumentParser(
        prog="geworker", allow_abbrev=False,
        description="Run and operate geworker servers on gunicorn.",
        epilog="Exit codes: 0 ok, 1 failed, 2 usage, 3 not running, 4 already running.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser, app: bool = True) -> None:
        if app:
            p.add_argument("app", nargs="?", metavar="APP", help="module:server (default: the "
                           "only running instance under ./.geworker)")
        p.add_argument("--run-dir", metavar="DIR", help="the instance's run directory "
                       + ("(to pick one of several)" if app else "(default: "
                          "./.geworker/<app>-<digest of its listeners>)"))

    # APP is one of gunicorn's arguments: it is read with gunicorn's parser,
    # so these parsers only describe it.
    p = sub.add_parser("start", allow_abbrev=False,
                       help="start gunicorn (any gunicorn option may follow)",
                       usage="%(prog)s APP [-d] [--run-dir DIR] [--prometheus HOST:PORT] "
                             "[--wait S] [gunicorn options]",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=START_ARGUMENTS.format(
                           what="Run APP on gunicorn, with -k geworker.Worker unless -k is "
                                "given."))
    common(p, app=False)
    p.add_argument("-d", "--daemon", action="store_true", help="detach, log to a file")
    p.add_argument("--prometheus", metavar="HOST:PORT", help="serve Prometheus metrics")
    p.add_argument("--wait", type=float, default=60.0, metavar="S",
                   help="with -d: seconds to wait for the workers (default 60)")
    p = sub.add_parser("stop", help="stop (QUIT); -g: graceful (TERM), drain connections")
    common(p)
    p.add_argument("-g", "--graceful", action="store_true")
    p.add_argument("--wait", type=float, help="seconds before 'stop failed'")
    p = sub.add_parser("restart", allow_abbrev=False, help="stop, then start with the same options",
                       usage="%(prog)s [APP] [-d] [--graceful] [--run-dir DIR] "
                             "[gunicorn options]",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description=START_ARGUMENTS.format(
                           what="Stop the instance if it runs, then start it with the options "
                                "given,\nor with those of its last start."))
    common(p, app=False)
    p.add_argument("-d", "--daemon", action="store_true")
    p.add_argument("--graceful", action="store_true", help="stop gracefully first")
    p.add_argument("--prometheus", metavar="HOST:PORT")
    p.add_argument("--wait", type=float, default=60.0)
    p = sub.add_parser("reload", help="check the app, then HUP: new workers, old ones drain")
    common(p)
    p = sub.add_parser("status", help="global and per-process status")
    common(p)
    p.add_argument("-d", "--daemon", action="store_true", help="refresh every second, live qps")
    p.add_argument("--json", action="store_true")
    p.add_argument("--iterations", type=int, default=0, help=argparse.SUPPRESS)
    p = sub.add_parser("connections", help="list every open connection")
    common(p)
    p.add_argument("--json", action="store_true")
    p.add_argument("--wait", type=float, default=3.0,
                   help="seconds to wait for busy workers (default 3)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geworker`` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    if argv is None:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `geworker status | head` stays quiet
    parser = build_parser()
    command = words[0] if words else None
    if command in ("start", "restart"):
        args, gunicorn_args = parser.parse_known_args(words)
        args.app = None
        if command == "start":
            return start(args, gunicorn_args)
        return restart(args, gunicorn_args)
    args = parser.parse_args(words)
    handlers = {"stop": stop, "reload": reload, "status": show_status,
                "connections": show_connections}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
