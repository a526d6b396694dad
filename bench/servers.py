"""The servers under test: how to start each one for a listener kind, wait for it, stop it.

Listener kinds: ``text`` (newline echo), ``frame`` (frame echo), ``http``
(hello), ``ws`` (WebSocket echo), ``ws-broadcast`` (WebSocket echo whose
``broadcast`` message fans out to every connection of its process).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import procstat

ROOT = Path(__file__).resolve().parent.parent
APPS = Path(__file__).resolve().parent / "apps"
PY = sys.executable


class ServerFailed(Exception):
    """The server did not come up (import error, missing protocol, timeout)."""


@dataclass(frozen=True)
class ServerSpec:
    """One server implementation and the listener kinds it supports."""

    name: str
    kinds: tuple[str, ...]
    note: str

    def command(self, kind: str, port: int, workers: int, build: Path) -> tuple[list[str], dict]:
        """The command line and extra environment to serve ``kind`` on ``port``."""
        ws_kind = kind.startswith("ws")
        if self.name == "geworker":
            scheme = {"text": "text", "frame": "frame", "http": "http",
                      "text-relay": "text"}.get(kind, "websocket")
            env = {"BENCH_URL": f"{scheme}://127.0.0.1:{port}",
                   "BENCH_KIND": {"http": "hello", "ws-broadcast": "broadcast", "ws-group": "group",
                                  "text-relay": "relay"}.get(kind, "echo")}
            return ([PY, "-m", "gunicorn", "-k", "geworker.Worker", "-w", str(workers),
                     "--no-control-socket", "--worker-connections", "200000", "--backlog", "4096",
                     "--log-level", "warning", "bench.apps.geworker_app:server"], env)
        if self.name == "gevent":
            return [PY, str(APPS / "gevent_echo.py"), str(port), kind, str(workers)], {}
        if self.name == "gevent-reuseport":
            return [PY, str(APPS / "gevent_echo.py"), str(port), kind, str(workers),
                    "reuseport"], {}
        if self.name == "uvloop":
            return [PY, str(APPS / "uvloop_echo.py"), str(port), kind, str(workers)], {}
        if self.name == "websockets":
            return [PY, str(APPS / "websockets_echo.py"), str(port), str(workers)], {}
        if self.name == "uvicorn":
            return ([PY, "-m", "uvicorn", "bench.apps.asgi_hello:app", "--host", "127.0.0.1",
                     "--port", str(port), "--workers", str(workers), "--http", "httptools",
                     "--loop", "uvloop", "--lifespan", "off", "--no-access-log",
                     "--log-level", "warning", "--backlog", "4096"], {})
        if self.name == "gunicorn-gevent":
            return ([PY, "-m", "gunicorn", "-k", "gevent", "-w", str(workers),
                     "--no-control-socket", "--worker-connections", "20000", "--backlog", "4096",
                     "-b", f"127.0.0.1:{port}", "--log-level", "warning",
                     "bench.apps.wsgi_hello:app"], {})
        if self.name == "c":
            mode = "http" if kind == "http" else "ws" if ws_kind else "raw"
            return [str(build / "cecho"), str(port), mode, str(workers)], {}
        raise ValueError(self.name)


SERVERS = {s.name: s for s in [
    ServerSpec("geworker", ("text", "frame", "http", "ws", "ws-broadcast", "ws-group",
                            "text-relay"),
               "gunicorn -k geworker.Worker"),
    ServerSpec("gevent", ("text", "frame"), "raw gevent StreamServer, forked"),
    ServerSpec("gevent-reuseport", ("text", "frame"),
               "raw gevent StreamServer, a SO_REUSEPORT socket per process (kernel-balanced)"),
    ServerSpec("uvloop", ("text", "frame"), "asyncio Protocol on uvloop, forked"),
    ServerSpec("uvicorn", ("http",), "uvicorn + httptools + uvloop, raw ASGI"),
    ServerSpec("gunicorn-gevent", ("http",), "gunicorn -k gevent, WSGI"),
    ServerSpec("websockets", ("ws", "ws-broadcast"), "websockets (asyncio, uvloop), forked"),
    ServerSpec("c", ("text", "frame", "http", "ws"), "C epoll echo: generator calibration"),
]}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _probe(kind: str, port: int) -> bool:
    """One real request/answer on the server; True when it answered correctly."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            if kind == "text":
                s.sendall(b"probe\n")
                want = b"probe\n"
            elif kind == "frame":
                s.sendall(b"\x00\x00\x00\x09probe")
                want = b"\x00\x00\x00\x09probe"
            elif kind == "http":
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                want = b"HTTP/1.1 200"
            else:
                s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                          b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          b"Sec-WebSocket-Version: 13\r\n\r\n")
                want = b"HTTP/1.1 101"
            got = b""
            while len(got) < len(want):
                chunk = s.recv(4096)
                if not chunk:
                    return False
                got += chunk
            return got.startswith(want)
    except OSError:
        return False


class RunningServer:
    """A server process group started for one measurement."""

    def __init__(self, spec: ServerSpec, kind: str, workers: int, build: Path, logdir: Path):
        self.spec, self.kind, self.workers = spec, kind, workers
        self.port = free_port()
        cmd, env = spec.command(kind, self.port, workers, build)
        self.log_path = logdir / f"{spec.name}-{kind}-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (lives as long as the server)
        full_env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", **env)
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        self.sid = self.proc.pid

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the server answers and all its workers hold their listener."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise ServerFailed(f"exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"not ready after {timeout}s: {self.log_tail()}")
            if len(procstat.worker_sockets(self.sid)) >= self.workers and _probe(
                    "ws" if self.kind.startswith("ws") else self.kind.split("-")[0], self.port):
                break
            time.sleep(0.1)
        time.sleep(0.3)  # let every worker reach its accept loop

    def log_tail(self) -> str:
        """The last line of the server's output (usually the reason it failed)."""
        self._log.flush()
        lines = [ln.strip() for ln in self.log_path.read_text(errors="replace").splitlines()]
        lines = [ln for ln in lines if ln]
        return lines[-1][:300] if lines else "no output"

    def stop(self) -> None:
        """TERM the process group, then KILL whatever is left a second later."""
        for sig, wait in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.sid, sig)
            except ProcessLookupError:
                break
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and procstat.session(self.sid):
                if self.proc.poll() is None:
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        self.proc.wait(timeout=0.05)
                else:
                    time.sleep(0.05)
            if not procstat.session(self.sid):
                break
        if self.proc.poll() is None:
            self.proc.wait(timeout=5)
        self._log.close()
