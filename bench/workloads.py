"""Workloads: drive a running server with the load generator and measure it from /proc."""

from __future__ import annotations

import os
import re
import select
import selectors
import socket
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import procstat
from .servers import RunningServer


@dataclass(frozen=True)
class Workload:
    """One measurement: which listener kind, which generator mode, which figures."""

    name: str
    kind: str  # listener kind (servers.py)
    mode: str  # loadgen mode, or "wrk"
    title: str
    pipeline: int = 1
    servers: tuple[str, ...] = ()
    workers: int | None = None  # server processes (None: --workers)


WORKLOADS = {w.name: w for w in [
    Workload("text1", "text", "text", "newline echo, pipeline 1", 1,
             ("geworker", "gevent", "gevent-reuseport", "uvloop", "c")),
    Workload("text16", "text", "text", "newline echo, pipeline 16", 16,
             ("geworker", "gevent", "gevent-reuseport", "uvloop", "c")),
    Workload("frame", "frame", "frame", "frame echo, pipeline 1", 1,
             ("geworker", "gevent", "gevent-reuseport", "uvloop", "c")),
    Workload("http", "http", "wrk", "HTTP hello (wrk, keep-alive)", 1,
             ("geworker", "uvicorn", "gunicorn-gevent", "c")),
    Workload("ws", "ws", "ws", "WebSocket echo, pipeline 1", 1, ("geworker", "websockets", "c")),
    Workload("idle_tcp", "text", "idle", "idle TCP connections", 1,
             ("geworker", "gevent", "uvloop", "c")),
    Workload("idle_ws", "ws", "idlews", "idle WebSocket connections", 1,
             ("geworker", "websockets", "c")),
    Workload("broadcast", "ws-broadcast", "broadcast", "broadcast fan-out (1 process)", 1,
             ("geworker", "websockets"), workers=1),
    Workload("group", "ws-group", "broadcast", "send_to_group fan-out over 4 workers", 1,
             ("geworker",), workers=4),
    Workload("relay_same", "text-relay", "relay-same",
             "send_to_client, receiver on the sender's worker", 1, ("geworker",)),
    Workload("relay_cross", "text-relay", "relay-cross",
             "send_to_client, receiver on the other worker", 1, ("geworker",)),
    # Not run by default: point 2's scale check, e.g. --workloads scale --servers geworker
    # --workers 8 --idle-connections 100000 --idle-procs 8
    Workload("scale", "ws-broadcast", "scale", "WebSocket scale: echo on each, then broadcast", 1,
             ("geworker", "websockets")),
]}
DEFAULT_WORKLOADS = [w for w in WORKLOADS if w != "scale"]


@dataclass
class Params:
    """Load shape shared by every server in a run."""

    duration: float = 5.0
    warmup: float = 1.0
    connections: int = 100
    size: int = 64
    gen_procs: int = 2
    idle_connections: int = 10000
    idle_procs: int = 4


@dataclass
class Sample:
    """The figures of one workload on one server in one round."""

    rate: float | None = None  # messages (or requests) per second
    p50_us: float | None = None
    p99_us: float | None = None
    errors: int = 0
    cpu_us_per_msg: float | None = None
    gen_cpu_us_per_msg: float | None = None  # the load generator's own CPU time
    balance: list[int] = field(default_factory=list)  # connections per worker process
    kb_per_conn: float | None = None
    fanout_ms: float | None = None
    connected: int = 0
    note: str = ""


def _balance(rs: RunningServer, workers: dict[int, int]) -> list[int]:
    """Established connections per worker process (those holding the listener at start)."""
    now = procstat.worker_connections(rs.sid, rs.port)
    return sorted((now.get(pid, 0) for pid in workers), reverse=True)


def _parse(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)


class _Gen:
    """A running load generator, read line by line with deadlines (unbuffered: select()
    must see every line as soon as it is written)."""

    def __init__(self, cmd: list[str]):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.lines: list[str] = []
        self._pending = b""

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while True:
            while b"\n" in self._pending:
                raw, self._pending = self._pending.split(b"\n", 1)
                line = raw.decode(errors="replace").strip()
                self.lines.append(line)
                if line.startswith(prefix):
                    return line
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], min(left, 0.2))
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                self._pending += chunk
        self.kill()
        raise RuntimeError(f"load generator: no {prefix} line ({' | '.join(self.lines[-3:])})")

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode())
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def run_echo(rs: RunningServer, wl: Workload, p: Params, loadgen: Path) -> Sample:
    """Closed-loop echo through the C generator: rate, latency, CPU/msg, balance."""
    workers = procstat.worker_sockets(rs.sid)
    gen = _Gen([str(loadgen), wl.mode, "-p", str(rs.port), "-c", str(p.connections),
                "-P", str(p.gen_procs), "-S", str(p.gen_procs), "-d", str(p.duration),
                "-w", str(p.warmup), "-n", str(wl.pipeline), "-s", str(p.size)])
    try:
        ready = gen.expect("READY", 30).split()
        t0, t1 = map(float, gen.expect("WINDOW", 10).split()[1:])
        _sleep_until(t0)
        cpu0 = procstat.cpu_seconds(rs.sid)
        balance: list[int] = []
        for frac in (0.25, 0.5, 0.75):  # keep the fullest reading (a stalled reader sees none)
            _sleep_until(t0 + (t1 - t0) * frac)
            balance = max(balance, _balance(rs, workers), key=sum)
        _sleep_until(t1)
        cpu1 = procstat.cpu_seconds(rs.sid)
        res = _parse(gen.expect("RESULT", 15))
    finally:
        gen.kill()
    msgs = int(res["msgs"])
    return Sample(rate=float(res["rate"]), p50_us=float(res["p50_us"]),
                  p99_us=float(res["p99_us"]),
                  errors=int(res["errors"]) + int(res["conn_errors"]),
                  cpu_us_per_msg=(cpu1 - cpu0) / msgs * 1e6 if msgs else None,
                  gen_cpu_us_per_msg=float(res["cpu_s"]) / msgs * 1e6 if msgs else None,
                  balance=balance, connected=int(ready[1]))


_WRK_LAT = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def run_wrk(rs: RunningServer, wl: Workload, p: Params, loadgen: Path) -> Sample:
    """HTTP hello through wrk (2 threads, keep-alive, same connection count)."""
    url = f"http://127.0.0.1:{rs.port}/"
    threads = str(min(p.gen_procs, p.connections))
    if p.warmup > 0:
        subprocess.run(["wrk", "-t", threads, "-c", str(p.connections),
                        "-d", f"{max(1, round(p.warmup))}s", url],
                       capture_output=True, timeout=p.warmup + 30, check=False)
    workers = procstat.worker_sockets(rs.sid)
    duration = max(1, round(p.duration))
    cpu0 = procstat.cpu_seconds(rs.sid)
    proc = subprocess.Popen(["wrk", "-t", threads, "-c", str(p.connections), "-d", f"{duration}s",
                             "--latency", url], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    balance: list[int] = []
    for _ in range(3):
        time.sleep(duration / 4)
        balance = max(balance, _balance(rs, workers), key=sum)
    gen_cpu_s = 0.0
    deadline = time.monotonic() + duration + 30
    while proc.poll() is None and time.monotonic() < deadline:
        gen_cpu_s = procstat.process_cpu(proc.pid) or gen_cpu_s  # the last reading before exit
        time.sleep(0.05)
    try:
        out, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    cpu1 = procstat.cpu_seconds(rs.sid)
    total = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not (total and rate):
        raise RuntimeError(f"wrk: {out.strip()[-300:]}")
    lat = {m[0]: float(m[1]) * _UNITS[m[2]] for m in _WRK_LAT.findall(out)}
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx[1]) if non2xx else 0
    requests = int(total[1])
    cpu = (cpu1 - cpu0) / requests * 1e6 if requests else None
    gen_cpu = gen_cpu_s / requests * 1e6 if requests else None
    return Sample(rate=float(rate[1]), p50_us=lat.get("50"), p99_us=lat.get("99"),
                  errors=errors, cpu_us_per_msg=cpu, gen_cpu_us_per_msg=gen_cpu,
                  balance=balance, connected=p.connections)


def _settled_rss(rs: RunningServer, timeout: float = 10.0) -> int:
    """Summed RSS once it stops moving (two readings 0.5 s apart within 0.5%)."""
    last = procstat.rss_bytes(rs.sid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = procstat.rss_bytes(rs.sid)
        if abs(now - last) <= last * 0.005:
            return now
        last = now
    return last


IDLE_FOR = 5.0  # seconds the connections stay silent before the memory is read


def run_idle(rs: RunningServer, wl: Workload, p: Params, loadgen: Path) -> Sample:
    """Open many idle connections (after the WebSocket handshake for idlews): RSS delta / conn."""
    workers = procstat.worker_sockets(rs.sid)
    rss0 = _settled_rss(rs)
    n = p.idle_connections
    gen = _Gen([str(loadgen), wl.mode, "-p", str(rs.port), "-c", str(n), "-P", str(p.idle_procs),
                "-S", str(p.idle_procs), "-T", "60"])
    try:
        ready = gen.expect("READY", 90).split()
        connected, failed = int(ready[1]), int(ready[2])
        # wait until every connection is accepted and served, then for RSS to settle
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(_balance(rs, workers)) < connected:
            time.sleep(0.2)
        # Idle means idle for a while (geworker parks a connection that never sent
        # anything at once, and one silent for 1 s within a few seconds).
        time.sleep(IDLE_FOR)
        rss1 = _settled_rss(rs)
        balance = _balance(rs, workers)
    finally:
        if gen.proc.poll() is None:
            try:
                gen.send("quit\n")
                gen.proc.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired):
                pass
        gen.kill()
    return Sample(kb_per_conn=(rss1 - rss0) / connected / 1024 if connected else None,
                  errors=failed, balance=balance, connected=connected)


def run_broadcast(rs: RunningServer, wl: Workload, p: Params, loadgen: Path) -> Sample:
    """Hold many WebSocket connections, send one ``broadcast``: time until the last has it."""
    n = p.idle_connections
    connect_time = max(60, n // 1000)
    cmd = [str(loadgen), "broadcast", "-p", str(rs.port), "-c", str(n), "-P", str(p.idle_procs),
           "-S", str(p.idle_procs), "-T", str(connect_time), "-d", "30"]
    if wl.mode == "scale":
        cmd.append("-E")  # every connection answers one echo before the broadcast
    workers = procstat.worker_sockets(rs.sid)
    gen = _Gen(cmd)
    try:
        ready = gen.expect("READY", connect_time + 30).split()
        balance = _balance(rs, workers)
        res = _parse(gen.expect("RESULT", 45))
    finally:
        gen.kill()
    if "error" in res:
        raise RuntimeError(f"broadcast: {res['error']}")
    connected = int(ready[1])
    sample = Sample(fanout_ms=float(res["last_ms"]), connected=connected, balance=balance,
                    errors=int(ready[2]) + int(res["errors"]),
                    note=f"{res['received']} of {connected} got the broadcast")
    if wl.mode == "broadcast":  # one process: every connection must get it
        sample.errors += int(res["missing"])
    return sample


#: Sender/receiver pairs of the relay workloads, and the lines one sender may have in flight.
RELAY_PAIRS = 16
RELAY_WINDOW = 32


def _relay_pairs(port: int, cross: bool) -> list[tuple[socket.socket, socket.socket, str]]:
    """(sender, receiver, receiver's client id) pairs, on one worker or on two."""
    by_pid: dict[str, list[tuple[socket.socket, str]]] = {}
    for _ in range(RELAY_PAIRS * 20):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"id\n")
        pid, client_id = sock.makefile("rb").readline().decode().split()
        by_pid.setdefault(pid, []).append((sock, client_id))
        if len(by_pid) >= 2 and all(len(v) >= RELAY_PAIRS * 2 for v in by_pid.values()):
            break
    a, b = list(by_pid.values())[:2]
    pairs = []
    for i in range(RELAY_PAIRS):
        sender = a[2 * i][0]
        receiver = b[i] if cross else a[2 * i + 1]
        pairs.append((sender, receiver[0], receiver[1]))
    return pairs


def run_relay(rs: RunningServer, wl: Workload, p: Params, loadgen: Path) -> Sample:
    """Senders on one worker, ``send_to_client`` to receivers on the same or the other worker.

    A Python closed loop. msg/s and CPU: each sender keeps RELAY_WINDOW lines
    in flight. p50/p99: then one line in flight per sender, each carrying its
    send time, so the latency is the whole hop (client -> worker -> worker ->
    client) without the queueing of a full window.
    """
    pairs = _relay_pairs(rs.port, wl.mode == "relay-cross")
    sel = selectors.DefaultSelector()
    inflight = [0] * len(pairs)
    buffers = [b""] * len(pairs)
    for i, (sender, receiver, _) in enumerate(pairs):
        sender.settimeout(5)  # a window of short lines: the kernel always takes it
        receiver.setblocking(False)
        sel.register(receiver, selectors.EVENT_READ, i)
    pad = "x" * max(0, p.size - 40)
    latencies: list[float] = []
    received = 0

    def fill(i: int, window: int) -> None:
        sender, _, client_id = pairs[i]
        lines = [f"to {client_id} {time.perf_counter_ns()} {pad}\n"
                 for _ in range(window - inflight[i])]
        if lines:
            sender.sendall("".join(lines).encode())
            inflight[i] += len(lines)

    def pump(until: float, window: int) -> None:
        nonlocal received
        for i in range(len(pairs)):
            fill(i, window)
        while time.monotonic() < until:
            for key, _ in sel.select(0.1):
                i = key.data
                data = buffers[i] + key.fileobj.recv(65536)  # type: ignore[union-attr]
                *lines, buffers[i] = data.split(b"\n")
                stamp = time.perf_counter_ns()
                for line in lines:
                    latencies.append((stamp - int(line.split(b" ", 1)[0])) / 1000)
                received += len(lines)
                inflight[i] -= len(lines)
                fill(i, window)

    # Throughput: RELAY_WINDOW lines in flight per sender, after the warm-up.
    pump(time.monotonic() + p.warmup, RELAY_WINDOW)
    received = 0
    cpu0 = procstat.cpu_seconds(rs.sid)
    pump(time.monotonic() + p.duration, RELAY_WINDOW)
    cpu1 = procstat.cpu_seconds(rs.sid)
    rate, measured = received / p.duration, received
    # Latency: one line in flight per sender (a full window would measure the queue).
    pump(time.monotonic() + 0.5, 1)
    latencies.clear()
    pump(time.monotonic() + max(1.0, p.duration / 2), 1)
    for sender, receiver, _ in pairs:
        sender.close()
        receiver.close()
    latencies.sort()
    return Sample(rate=rate or None,
                  p50_us=latencies[len(latencies) // 2] if latencies else None,
                  p99_us=latencies[int(len(latencies) * 0.99)] if latencies else None,
                  cpu_us_per_msg=(cpu1 - cpu0) / measured * 1e6 if measured else None,
                  connected=len(pairs) * 2)


RUNNERS: dict[str, Any] = {"wrk": run_wrk, "idle": run_idle, "idlews": run_idle,
                           "broadcast": run_broadcast, "scale": run_broadcast,
                           "relay-same": run_relay, "relay-cross": run_relay}


def run(rs: RunningServer, wl: Workload, p: Params, loadgen: Path) -> Sample:
    """Run ``wl`` against the started server ``rs``."""
    return RUNNERS.get(wl.mode, run_echo)(rs, wl, p, loadgen)


def median(values: list[Any]) -> Any:
    """Median of the non-None values, or None."""
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None
