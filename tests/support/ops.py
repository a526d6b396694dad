"""Helpers for the operations tests: run the ``geworker`` command on an app in a temp dir.

Instances are started with ``geworker start -d`` (gunicorn's daemon mode), so
the master is not our child: teardown kills its process group (the daemon's
session) by the pid it wrote, and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, check_server_log, pid_alive, traceback_allowed, wait_until

ECHO_APP = """
import os
import time

from geworker import Server, timers

server = Server(f"text://127.0.0.1:{os.environ['PORT']}", name="echo")
if os.environ.get("UDP_PORT"):
    server.listen(f"text+udp://127.0.0.1:{os.environ['UDP_PORT']}")
if os.environ.get("HTTP_PORT"):
    server.listen(f"http://127.0.0.1:{os.environ['HTTP_PORT']}")
if os.environ.get("WS_PORT"):
    server.listen(f"websocket://127.0.0.1:{os.environ['WS_PORT']}")

@server.on_worker_start
def started(worker):
    timers.add(60, lambda: None)

@server.on_message
def echo(conn, message):
    if hasattr(message, "method"):  # an HTTP request: answer its path
        conn.send(message.path)
    elif message == "pid":
        conn.send(str(os.getpid()))
    elif message.startswith("sleep "):
        time.sleep(float(message.split()[1]))
        conn.send("slept")
    elif message.startswith("burn "):
        end = time.monotonic() + float(message.split()[1])
        while time.monotonic() < end:
            pass
        conn.send("burnt")
    else:
        conn.send(message)
"""


def run_cli(cwd: Path, *args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``geworker ARGS`` in ``cwd`` and capture its output."""
    full_env = dict(os.environ, PYTHONPATH=f"{cwd}{os.pathsep}{ROOT}", PYTHONUNBUFFERED="1",
                    **(env or {}))
    full_env.pop("GEWORKER_RUN_DIR", None)
    return subprocess.run([sys.executable, "-m", "geworker.ops.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


class Instance:
    """A ``geworker start -d`` instance of an app written to ``cwd/app.py``."""

    def __init__(self, cwd: Path, source: str, port: int, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.port = port
        self.env = {"PORT": str(port), **env}
        cwd.mkdir(parents=True, exist_ok=True)
        (cwd / "app.py").write_text(textwrap.dedent(source))

    @property
    def run_dir(self) -> Path:
        """The run directory: ``.geworker/app-server-<digest of the listeners>``.

        One instance per test directory, so the one there is this one's.
        """
        found = sorted((self.cwd / ".geworker").glob("app-server-*"))
        assert len(found) <= 1, f"several run directories: {found}"
        return found[0] if found else self.cwd / ".geworker" / "app-server-(none yet)"

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run a ``geworker`` command for this instance."""
        return run_cli(self.cwd, *args, env=self.env, timeout=timeout)

    def start(self, *gunicorn_args: str) -> subprocess.CompletedProcess[str]:
        """``geworker start -d app:server`` with gunicorn options."""
        return self.cli("start", "-d", "app:server", "--graceful-timeout", "10", *gunicorn_args)

    @property
    def master_pid(self) -> int | None:
        try:
            pid = int((self.run_dir / "gunicorn.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if pid_alive(pid) else None

    def status(self) -> dict:
        """``geworker status --json``, parsed."""
        result = self.cli("status", "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def worker_pids(self) -> list[int]:
        return sorted(w["pid"] for w in self.status()["workers"])

    def wait_workers(self, count: int, exclude: set[int] = frozenset(),  # type: ignore[assignment]
                     timeout: float = 20) -> list[int]:
        """Wait for ``count`` serving workers, none of them in ``exclude``."""
        def ready():
            workers = self.status()["workers"]
            pids = [w["pid"] for w in workers if w["state"] == "idle"]
            if len(workers) == count and len(pids) == count and not set(pids) & exclude:
                return sorted(pids)
            return None

        return wait_until(ready, timeout, interval=0.1, what=f"{count} fresh workers")

    def log(self) -> str:
        try:
            return (self.run_dir / "geworker.log").read_text(errors="replace")
        except OSError:
            return ""

    def kill(self) -> None:
        """Teardown: stop the daemon's whole session if it still runs."""
        pid = self.master_pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGQUIT)
            wait_until(lambda: not pid_alive(pid), 10, what="master exit")
        except (ProcessLookupError, AssertionError):
            pass
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def instances(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """Factory: ``instances(source=ECHO_APP, port=..., subdir="a", env={})`` -> Instance.

    At teardown each is killed and its log checked for tracebacks.
    """
    made: list[Instance] = []

    def make(source: str = ECHO_APP, port: int = 0, subdir: str = "app",
             env: dict[str, str] | None = None) -> Instance:
        inst = Instance(tmp_path / subdir, source, port, env or {})
        made.append(inst)
        return inst

    yield make
    for inst in made:
        inst.kill()
    for inst in made:
        check_server_log(inst.log(), f"the instance in {inst.cwd}", traceback_allowed(request))


def wait_pid_gone(pid: int, timeout: float = 10) -> None:
    wait_until(lambda: not pid_alive(pid), timeout, what=f"pid {pid} to exit")
