"""Test harness: real gunicorn processes on free loopback ports.

The pytest process itself is never monkey-patched: servers run as
subprocesses (``python -m gunicorn -k geworker.Worker``) and tests talk to
them with ordinary blocking sockets.

Every server a test starts has its log checked when it is torn down: a
``Traceback`` in it fails the test (:func:`check_server_log`), since no
normal start, stop, reload, resize, recycle or disconnect logs one. A test
that provokes one on purpose says so with ``@pytest.mark.allow_traceback("RuntimeError: boom")``
(the exception line each provoked traceback ends with).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "allow_traceback(*last_lines): the servers of this test may log tracebacks "
        "ending with these lines (any traceback without arguments): the test provokes them")


def traceback_allowed(request: pytest.FixtureRequest) -> bool | tuple[str, ...]:
    """What the test's ``allow_traceback`` marker allows (see :func:`check_server_log`)."""
    marker = request.node.get_closest_marker("allow_traceback")
    if marker is None:
        return ()
    return tuple(marker.args) or True


def traceback_ends(text: str) -> list[str]:
    """The last line (the exception) of each traceback in a log, in order."""
    ends = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Traceback"):
            j = i + 1
            while j < len(lines) and (lines[j].startswith(" ") or not lines[j]):
                j += 1
            ends.append(lines[j] if j < len(lines) else "")
    return ends


def check_server_log(text: str, where: str, allowed: bool | Collection[str] = ()) -> None:
    """Fail the test when a server's log holds a traceback it did not ask for.

    ``allowed``: True for any traceback, else the exception lines (``RuntimeError:
    boom``) the provoked tracebacks end with. Shows the log around the first other one.
    """
    if allowed is True:
        return
    expected = tuple(allowed or ())
    ends = traceback_ends(text)
    unexpected = [end for end in ends if not end.startswith(expected)] if expected else ends
    if not unexpected:
        return
    at = text.find(f"\n{unexpected[0]}")
    at = text.rfind("Traceback", 0, at) if at >= 0 else text.find("Traceback")
    start = text.rfind("\n", 0, max(at - 1500, 0)) + 1
    pytest.fail(f"{where} logged a traceback ending {unexpected[0]!r} (mark the test "
                f"allow_traceback if it provokes it on purpose):\n{text[start:at + 3000]}",
                pytrace=False)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 for both TCP and UDP right now."""
    while True:
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        other = socket.SOCK_DGRAM if kind == socket.SOCK_STREAM else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, other) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def children(pid: int) -> list[int]:
    """Direct child pids of ``pid`` (gunicorn's workers)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            out += [int(p) for p in (task / "children").read_text().split()]
    return sorted(set(out))


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except OSError:
        return False


class Gunicorn:
    """A running ``gunicorn -k geworker.Worker`` with an app written to a temp dir."""

    def __init__(self, tmp: Path, source: str | None, args: list[str], env: dict[str, str],
                 workers: int, target: str = "app:server",
                 allow_traceback: bool | Collection[str] = (),
                 argv: list[str] | None = None) -> None:
        """``argv``: gunicorn's arguments as given (an example's documented command), in
        place of ``-k geworker.Worker -w WORKERS ARGS TARGET``; ``source`` None writes no app."""
        self.tmp = tmp
        self.workers = workers
        self.allow_traceback = allow_traceback
        if source is not None:
            (tmp / "app.py").write_text(textwrap.dedent(source))
        self.log_path = tmp / "gunicorn.log"
        self.log_file = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        harness = ["--no-control-socket", "--graceful-timeout", "10"]
        if argv is None:
            argv = ["-k", "geworker.Worker", "-w", str(workers), *harness, *args, target]
        else:
            argv = [*harness, *argv]
        cmd = [sys.executable, "-m", "gunicorn", *argv]
        full_env = dict(os.environ, PYTHONPATH=f"{tmp}{os.pathsep}{ROOT}",
                        PYTHONUNBUFFERED="1", **env)
        self.proc = subprocess.Popen(cmd, cwd=tmp, env=full_env, stdout=self.log_file,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ready_count(self) -> int:
        return len(re.findall(r"geworker: worker \d+ \(index \d+\) serving", self.log()))

    def wait_ready(self, count: int | None = None, timeout: float = 45.0) -> None:
        """Wait until ``count`` workers (default: all) have logged that they serve."""
        want = self.workers if count is None else count

        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited {self.proc.returncode}:\n{self.log()}")
            return self.ready_count() >= want

        wait_until(ready, timeout, what=f"{want} workers ready\n{self.log()}")

    def worker_pids(self) -> list[int]:
        return [p for p in children(self.pid) if pid_alive(p)]

    def signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        # Workers are in the master's session: make sure none outlives the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log_file.close()
        return self.proc.returncode

    def check_log(self) -> None:
        """Fail the test if the log has a traceback (see :func:`check_server_log`)."""
        check_server_log(self.log(), f"gunicorn (pid {self.pid})", self.allow_traceback)


@pytest.fixture
def gunicorn(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator:
    """Factory: ``gunicorn(source, workers=2, args=[...], env={...})`` -> a started Gunicorn.

    At teardown each is stopped and its log checked for tracebacks.
    """
    started: list[Gunicorn] = []
    allowed = traceback_allowed(request)

    def start(source: str, workers: int = 2, args: list[str] | None = None,
              env: dict[str, str] | None = None, wait: bool = True,
              target: str = "app:server") -> Gunicorn:
        g = Gunicorn(tmp_path, source, args or [], env or {}, workers, target, allowed)
        started.append(g)
        if wait:
            g.wait_ready()
        return g

    yield start
    for g in started:
        g.stop()
    for g in started:
        g.check_log()


@pytest.fixture(scope="session")
def tls_certs(tmp_path_factory):
    """(certificate chain file, key file, client SSLContext trusting them) from trustme."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("certs")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert.cert_chain_pems[0].write_to_path(cert_path)
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(cert_path, append=True)
    cert.private_key_pem.write_to_path(key_path)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return cert_path, key_path, client


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
                 key: bytes | None = None) -> bytes:
    """A masked WebSocket client frame built by hand (also what wsproto refuses to send).

    ``key`` is the 4-byte mask (random by default; ``b"\\0" * 4`` leaves the payload as is).
    """
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4) if key is None else key
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class LineClient:
    """A blocking text:// client."""

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def recv(self) -> str:
        return self.file.readline().decode().rstrip("\n")

    def request(self, line: str) -> str:
        self.send(line)
        return self.recv()

    def close(self) -> None:
        self.file.close()
        self.sock.close()
