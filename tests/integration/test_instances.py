"""Several instances of one app in one directory: each has its own run directory and socket.

Plain ``gunicorn -k geworker.Worker`` instances (no ``geworker`` command, no
config file) and ``geworker start`` instances, with ``HOME`` pointed at a
temporary directory so that gunicorn's one-per-user control socket
(``~/.gunicorn/gunicorn.ctl``) would show up there if anything used it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from geworker import rundir

from conftest import (
    ROOT,
    LineClient,
    check_server_log,
    free_port,
    pid_alive,
    traceback_allowed,
    wait_until,
)
from support.ops import run_cli

APP = """
import os
from geworker import Server

server = Server(f"text://127.0.0.1:{os.environ['LISTEN_PORT']}", name="echo")

@server.on_message
def echo(conn, message):
    conn.send(f"{os.getppid()} {message}")
"""


def _environ(cwd: Path, home: Path, port: int) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=f"{cwd}{os.pathsep}{ROOT}", PYTHONUNBUFFERED="1",
               HOME=str(home), LISTEN_PORT=str(port))
    for name in ("XDG_RUNTIME_DIR", rundir.RUN_DIR_ENV):
        env.pop(name, None)
    return env


class Plain:
    """``gunicorn -k geworker.Worker app:server`` on ``port``, nothing else."""

    def __init__(self, cwd: Path, home: Path, port: int) -> None:
        self.cwd = cwd
        self.home = home
        self.port = port
        self.log_path = cwd / f"gunicorn-{port}.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "geworker.Worker", "-w", "1",
             "--graceful-timeout", "5", "app:server"],
            cwd=cwd, env=_environ(cwd, home, port), stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def master(self) -> dict | None:
        """This master's record, from whichever run directory it wrote."""
        for path in self.cwd.glob(".geworker/*/master.json"):
            with contextlib.suppress(OSError, ValueError):
                data = json.loads(path.read_text())
                if data.get("pid") == self.pid:
                    return {**data, "run_dir": path.parent}
        return None

    def wait_ready(self) -> dict:
        """Wait until the worker serves and the control socket exists; the master's record."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited {self.proc.returncode}:\n{self.log()}")
            master = self.master()
            if (master and re.search(r"geworker: worker \d+ \(index \d+\) serving", self.log())
                    and os.path.exists(master["control_socket"])):
                return master
            return None

        return wait_until(ready, 45, interval=0.05, what=f"gunicorn on {self.port}\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=20)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # the workers share its session
        self.proc.wait(timeout=5)
        self.log_file.close()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def plain(tmp_path: Path, home: Path, request: pytest.FixtureRequest) -> Iterator:
    """Factory: ``plain(port)`` -> a started Plain in ``tmp_path / "app"``."""
    started: list[Plain] = []
    cwd = tmp_path / "app"
    cwd.mkdir()
    (cwd / "app.py").write_text(textwrap.dedent(APP))

    def start(port: int) -> Plain:
        g = Plain(cwd, home, port)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()
    for g in started:
        check_server_log(g.log(), f"gunicorn (pid {g.pid})", traceback_allowed(request))


def control_socket_pid(path: str, home: Path) -> int:
    """The pid of the master answering on control socket ``path`` (``gunicornc``)."""
    result = subprocess.run([sys.executable, "-m", "gunicorn.ctl.cli", "-s", path,
                             "-c", "show stats", "-j"], capture_output=True, text=True,
                            timeout=30, env=dict(os.environ, HOME=str(home)))
    assert result.returncode == 0, result.stderr
    return int(json.loads(result.stdout)["pid"])


def test_two_plain_instances_of_one_app_in_one_directory(plain, home):
    a, b = plain(free_port()), plain(free_port())
    master_a, master_b = a.wait_ready(), b.wait_ready()
    cwd = a.cwd
    run_a, run_b = master_a["run_dir"], master_b["run_dir"]

    # one run directory each, named for the app and its listeners
    assert run_a != run_b
    for g, master in ((a, master_a), (b, master_b)):
        urls = [f"text://127.0.0.1:{g.port}"]
        assert master["run_dir"] == cwd / ".geworker" / rundir.instance_name("app:server", urls)
        assert master["instance"] == master["run_dir"].name
        assert "belongs to the running master" not in g.log()
    # one control socket each, in its run directory; none in the home directory
    assert master_a["control_socket"] == str(run_a / "gunicorn.ctl")
    assert master_b["control_socket"] == str(run_b / "gunicorn.ctl")
    assert not (home / ".gunicorn").exists()
    assert control_socket_pid(master_a["control_socket"], home) == a.pid
    assert control_socket_pid(master_b["control_socket"], home) == b.pid

    # without --run-dir, the command cannot tell which one is meant: it lists both
    for args in (["status"], ["status", "app:server"], ["stop"], ["connections"]):
        result = run_cli(cwd, *args, env={"HOME": str(home)})
        assert result.returncode == 2, (args, result)
        assert "2 instances" in result.stderr and "pick one with --run-dir" in result.stderr
        for g, run in ((a, run_a), (b, run_b)):
            assert f"  {run}  master pid {g.pid}  text://127.0.0.1:{g.port}" in result.stderr
    assert a.proc.poll() is None and b.proc.poll() is None  # `stop` stopped neither

    # --run-dir picks one, and the output names it first
    result = run_cli(cwd, "status", "--run-dir", str(run_a), env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()[:2]
    assert first == f"instance {run_a.name} (run dir {run_a}, master pid {a.pid})"
    assert second == "----GLOBAL STATUS----"
    result = run_cli(cwd, "status", "--json", "--run-dir", str(run_b), env={"HOME": str(home)})
    data = json.loads(result.stdout)
    assert data["instance"] == run_b.name and data["master"]["pid"] == b.pid
    result = run_cli(cwd, "connections", "--run-dir", str(run_b), env={"HOME": str(home)})
    assert result.stdout.splitlines()[0].startswith(f"instance {run_b.name} ")

    # stopping one leaves the other serving, with its status and control socket
    client = LineClient(b.port)
    assert client.request("hi") == f"{b.pid} hi"
    result = run_cli(cwd, "stop", "--run-dir", str(run_a), env={"HOME": str(home)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == \
        f"instance {run_a.name} (run dir {run_a}, master pid {a.pid})"
    assert a.proc.wait(timeout=20) == 0
    assert b.proc.poll() is None
    assert client.request("still") == f"{b.pid} still"
    result = run_cli(cwd, "status", env={"HOME": str(home)})  # the one left running
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == \
        f"instance {run_b.name} (run dir {run_b}, master pid {b.pid})"
    assert control_socket_pid(master_b["control_socket"], home) == b.pid
    assert not (home / ".gunicorn").exists()
    client.close()


def _stop_started(cwd: Path) -> None:
    """Teardown for ``geworker start -d``: the daemons' sessions, found by their pid files."""
    for pidfile in cwd.glob(".geworker/*/gunicorn.pid"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text())
            if pid_alive(pid):
                os.kill(pid, signal.SIGQUIT)
                with contextlib.suppress(AssertionError):
                    wait_until(lambda p=pid: not pid_alive(p), 10, what="master exit")
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def test_start_names_the_instance_as_the_master_does(tmp_path, home):
    cwd = tmp_path / "app"
    cwd.mkdir()
    (cwd / "app.py").write_text(textwrap.dedent(APP))
    ports = free_port(), free_port()

    def cli(port: int, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(cwd, *args, env={"HOME": str(home), "LISTEN_PORT": str(port)})

    try:
        for port in ports:
            result = cli(port, "start", "-d", "app:server", "-w", "1")
            assert result.returncode == 0, result.stderr
        runs = [cwd / ".geworker" / rundir.instance_name("app:server",
                                                         [f"text://127.0.0.1:{p}"])
                for p in ports]
        pids = [int((run / "gunicorn.pid").read_text()) for run in runs]
        assert pids[0] != pids[1] and all(pid_alive(p) for p in pids)
        for run, pid in zip(runs, pids, strict=True):
            assert rundir.read_master(run)["pid"] == pid
            assert rundir.read_master(run)["control_socket"] == str(run / "gunicorn.ctl")

        again = cli(ports[0], "start", "-d", "app:server", "-w", "1")
        assert again.returncode == 4, again.stderr
        assert f"already running (pid {pids[0]}, run dir {runs[0]})" in again.stderr
        assert not (home / ".gunicorn").exists()
    finally:
        _stop_started(cwd)


def test_start_help_shows_the_app_argument(tmp_path):
    result = run_cli(tmp_path, "start", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: geworker start APP ")
    assert re.search(r"^  APP +module:server", result.stdout, re.MULTILINE), result.stdout
    result = run_cli(tmp_path, "restart", "--help")
    assert result.stdout.startswith("usage: geworker restart [APP] ")
