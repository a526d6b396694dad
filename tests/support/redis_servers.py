"""Real ``redis-server`` processes for the Redis backend's tests: one server, or a cluster.

Each server runs in its own temporary directory on a free loopback port, with
persistence off, and is killed (by pid) when the test ends. A test that needs
Redis is skipped, with the reason, when ``redis-server`` is not installed
(``.ci/run`` installs it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path

import pytest

from conftest import free_port, wait_until

REDIS_SERVER = shutil.which("redis-server")
REDIS_CLI = shutil.which("redis-cli")

needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None or REDIS_CLI is None,
    reason="redis-server and redis-cli are not installed (apt-get install redis-server)")


def command(port: int, *args: str, timeout: float = 2.0,
            tls: ssl.SSLContext | None = None) -> bytes:
    """Send one inline command to the server on ``port``; its raw reply (or b"" on error)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            s = raw if tls is None else tls.wrap_socket(raw, server_hostname="127.0.0.1")
            s.sendall(" ".join(args).encode() + b"\r\n")
            return s.recv(65536)
    except OSError:
        return b""


class TlsFiles:
    """A CA and a certificate for 127.0.0.1 (from trustme), as PEM files in ``directory``."""

    def __init__(self, directory: Path) -> None:
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        self.ca, self.cert, self.key = (directory / "ca.pem", directory / "cert.pem",
                                        directory / "key.pem")
        ca.cert_pem.write_to_path(self.ca)
        cert.cert_chain_pems[0].write_to_path(self.cert)
        cert.private_key_pem.write_to_path(self.key)
        self.client = ssl.create_default_context(cafile=str(self.ca))

    def server_args(self) -> tuple[str, ...]:
        """redis-server arguments that serve TLS only (clients need no certificate)."""
        return ("--tls-cert-file", str(self.cert), "--tls-key-file", str(self.key),
                "--tls-ca-cert-file", str(self.ca), "--tls-auth-clients", "no")


class RedisServer:
    """One ``redis-server`` on a free port (``extra``: more arguments, e.g. cluster mode)."""

    def __init__(self, directory: Path, port: int | None = None,
                 extra: tuple[str, ...] = (), tls: TlsFiles | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.extra = extra
        self.tls = tls
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        self.start()

    @property
    def url(self) -> str:
        if self.tls is not None:
            return f"rediss://127.0.0.1:{self.port}/0?ssl_ca_certs={self.tls.ca}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        assert REDIS_SERVER is not None
        log = open(self.directory / "redis.log", "ab")  # noqa: SIM115 (the child keeps it)
        ports: tuple[str, ...] = ("--port", str(self.port))
        if self.tls is not None:
            ports = ("--port", "0", "--tls-port", str(self.port), *self.tls.server_args())
        self.proc = subprocess.Popen(
            [REDIS_SERVER, *ports, "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), *self.extra],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.directory)
        log.close()
        try:
            wait_until(lambda: self._answers(), 10, what=f"redis-server on port {self.port}")
        except BaseException:
            self.kill()  # never left running behind a failed start
            raise

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"redis-server exited:\n{self.log()}")
        tls = None if self.tls is None else self.tls.client
        return bool(command(self.port, "PING", timeout=0.5, tls=tls))  # PONG, or NOAUTH

    def log(self) -> str:
        return (self.directory / "redis.log").read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL it (the data goes: persistence is off)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.kill()


class RedisCluster:
    """Three ``redis-server --cluster-enabled yes`` masters, no replicas, slots spread."""

    def __init__(self, directory: Path, size: int = 3, tls: TlsFiles | None = None) -> None:
        self.tls = tls
        tls_args = () if tls is None else ("--tls-cluster", "yes")
        # The bus port is named: the default (port + 10000) may be taken, or past 65535.
        self.servers: list[RedisServer] = []
        try:
            for i in range(size):
                self.servers.append(RedisServer(
                    directory / f"node{i}", tls=tls,
                    extra=("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                           "--cluster-node-timeout", "5000", "--cluster-port", str(free_port()),
                           *tls_args)))
            self._create(tls)
        except BaseException:
            self.stop()
            raise

    def _create(self, tls: TlsFiles | None) -> None:
        assert REDIS_CLI is not None
        cli_tls = () if tls is None else ("--tls", "--cacert", str(tls.ca))
        out = subprocess.run(
            [REDIS_CLI, *cli_tls, "--cluster", "create",
             *(f"127.0.0.1:{s.port}" for s in self.servers),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        wait_until(self._ok, 30, interval=0.1, what="cluster_state:ok on every node")

    def _ok(self) -> bool:
        tls = None if self.tls is None else self.tls.client
        return all(b"cluster_state:ok" in command(s.port, "CLUSTER", "INFO", tls=tls)
                   for s in self.servers)

    @property
    def url(self) -> str:
        if self.tls is not None:
            return (f"rediss+cluster://127.0.0.1:{self.servers[0].port}"
                    f"?ssl_ca_certs={self.tls.ca}")
        return f"redis+cluster://127.0.0.1:{self.servers[0].port}"

    def stop(self) -> None:
        for s in self.servers:
            s.stop()
