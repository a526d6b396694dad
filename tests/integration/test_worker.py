"""The worker's behaviour with real gunicorn processes: isolation, errors, reload, stop, limits."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gunicorn.config import Config

from conftest import ROOT, LineClient, check_server_log, free_port, pid_alive, wait_until

CORE_APP = (ROOT / "tests" / "apps" / "core_app.py").read_text()


def start_core(gunicorn, tmp_path, urls, workers=1, args=None, **env):
    env = {"URLS": urls, "EVENTS_DIR": str(tmp_path), **{k: str(v) for k, v in env.items()}}
    return gunicorn(CORE_APP, workers=workers, args=args, env=env)


def events(tmp_path: Path) -> list[str]:
    """Recorded events of every worker; connection ids are made unique with the pid."""
    lines = []
    for f in sorted(tmp_path.glob("events.*")):
        pid = f.suffix[1:]
        for line in f.read_text().splitlines():
            kind, _, rest = line.partition(" ")
            lines.append(f"{kind} {pid}:{rest}" if kind in ("connect", "close") else line)
    return lines


def test_blocking_callbacks_are_isolated(gunicorn, tmp_path):
    port = free_port()
    start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=1)
    clients = [LineClient(port) for _ in range(20)]
    t0 = time.monotonic()
    for c in clients:
        c.send("sleep 1")
    replies = [c.recv() for c in clients]
    elapsed = time.monotonic() - t0
    assert replies == ["slept 1"] * 20
    assert elapsed < 1.8, f"20 x 1 s sleeps took {elapsed:.2f} s in one worker"


def test_messages_of_one_connection_are_handled_in_order(gunicorn, tmp_path):
    port = free_port()
    start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}")
    c = LineClient(port)
    c.sock.sendall(b"sleep 0.3\nfirst\nsleep 0.1\nsecond\n")
    assert [c.recv() for _ in range(4)] == ["slept 0.3", "first", "slept 0.1", "second"]


# a callback error is logged with its traceback
@pytest.mark.allow_traceback('RuntimeError: boom on purpose')
def test_exception_in_callback_closes_only_that_connection(gunicorn, tmp_path):
    port = free_port()
    g = start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=1)
    other = LineClient(port)
    pid = int(other.request("pid"))
    bad = LineClient(port)
    bad.send("boom")
    assert bad.file.readline() == b""  # the client sees a close
    assert other.request("still there?") == "still there?"
    assert int(LineClient(port).request("pid")) == pid  # same worker, not respawned
    assert "RuntimeError: boom on purpose" in g.log()
    assert any(e.endswith("RuntimeError") for e in events(tmp_path) if e.startswith("error"))


def test_send_from_another_greenlet_and_close_with_message(gunicorn, tmp_path):
    port = free_port()
    start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}")
    c = LineClient(port)
    assert c.request("later") == "soon"
    assert c.recv() == "from another greenlet"
    assert c.request("bye") == "goodbye"
    assert c.file.readline() == b""


def test_pause_and_resume_recv(gunicorn, tmp_path):
    port = free_port()
    start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}")
    c = LineClient(port)
    assert c.request("pause 0.5") == "paused"
    t0 = time.monotonic()
    assert c.request("after pause") == "after pause"
    assert time.monotonic() - t0 > 0.3


def test_close_wakes_a_paused_connection(gunicorn, tmp_path):
    port = free_port()
    start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}")
    c = LineClient(port)
    c.send("pause-forever")
    assert c.recv() == "closed while paused"
    assert c.file.readline() == b""
    wait_until(lambda: any(e.startswith("close") for e in events(tmp_path)), what="on_close")


def test_send_buffer_full_drops_and_drains(gunicorn, tmp_path):
    port = free_port()
    g = start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}")
    c = LineClient(port, timeout=10)
    c.send("flood 200")  # 13 MiB against a 1 MiB send queue, client not reading
    wait_until(lambda: any(e.startswith("flood") for e in events(tmp_path)), what="flood")
    flood = next(e for e in events(tmp_path) if e.startswith("flood")).split()
    accepted, dropped = int(flood[1]), int(flood[2])
    assert dropped > 0 and accepted + dropped == 200
    received = 0
    while received < accepted * 65537:
        chunk = c.sock.recv(1 << 20)
        assert chunk
        received += len(chunk)
    assert received == accepted * 65537
    wait_until(lambda: any(e.startswith("drain") for e in events(tmp_path)), what="drain")
    kinds = [e.split()[0] for e in events(tmp_path)]
    assert "full" in kinds and "error" in kinds  # SendBufferFull reported through on_error
    assert "SendBufferFull" in " ".join(events(tmp_path))
    assert c.request("alive") == "alive"
    assert "Traceback" not in g.log()


def test_bad_inputs_get_bounded_answers(gunicorn, tmp_path):
    text, frame, udp = free_port(), free_port(), free_port(socket.SOCK_DGRAM)
    idle = free_port()
    g = start_core(gunicorn, tmp_path,
                   f"text://127.0.0.1:{text} frame://127.0.0.1:{frame} "
                   f"text+udp://127.0.0.1:{udp}",
                   MAX_PACKAGE=65536, IDLE_URL=f"text://127.0.0.1:{idle}")
    witness = LineClient(text)
    pid = int(witness.request("pid"))

    # a frame header announcing 4 GiB: closed at once, nothing buffered
    with socket.create_connection(("127.0.0.1", frame), timeout=5) as s:
        s.sendall(b"\xff\xff\xff\xff")
        assert s.recv(10) == b""
    # a line longer than max_package_size, with no newline yet
    with socket.create_connection(("127.0.0.1", text), timeout=5) as s:
        with contextlib.suppress(ConnectionResetError):
            s.sendall(b"x" * 200_000)
        assert s.recv(10) in (b"",)
    # binary garbage on text://
    with socket.create_connection(("127.0.0.1", text), timeout=5) as s:
        s.sendall(bytes(range(128, 256)) + b"\n")
        assert s.recv(10) == b""
    # a 65,507-byte datagram (the IPv4 maximum) on text+udp: over the limit, dropped and logged
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(1)
        s.sendto(b"y" * 65507, ("127.0.0.1", udp))
        with pytest.raises(TimeoutError):
            s.recvfrom(70000)
        s.sendto(b"small\n", ("127.0.0.1", udp))
        assert s.recvfrom(100)[0] == b"small\n"
    # a client that connects and sends nothing: closed after the listener's idle_timeout
    with socket.create_connection(("127.0.0.1", idle), timeout=5) as s:
        t0 = time.monotonic()
        assert witness.request("meanwhile") == "meanwhile"
        assert s.recv(10) == b""
        assert 0.8 < time.monotonic() - t0 < 3

    log = g.log()
    assert "exceeds max_package_size=65536" in log
    assert "not valid UTF-8" in log
    assert "dropped a 65507-byte datagram" in log
    assert "closed after idle_timeout" in log
    assert witness.request("pid") == str(pid)
    assert "Traceback" not in log


def test_timer_precision(gunicorn, tmp_path):
    port = free_port()
    start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", TIMER=1)
    time.sleep(1.0)
    count, median_ms, worst_ms = LineClient(port).request("timer").split()
    print(f"10 ms timer: {count} intervals, median error {median_ms} ms, worst {worst_ms} ms")
    assert int(count) > 40
    assert float(median_ms) < 5.0


def test_worker_index_is_stable_and_reused(gunicorn, tmp_path):
    port = free_port()
    g = start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=2)

    def indexes() -> dict[int, int]:
        seen: dict[int, int] = {}
        for _ in range(200):
            index, pid = LineClient(port).request("index").split()
            seen[int(pid)] = int(index)
            if len(seen) == 2:
                break
        return seen

    seen = indexes()
    assert sorted(seen.values()) == [0, 1]
    victim = next(pid for pid, index in seen.items() if index == 0)
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(g.worker_pids()) == 2 and victim not in g.worker_pids(),
               what="replacement worker")
    g.wait_ready(3)
    def both_answering():
        seen = indexes()
        return seen if len(seen) == 2 and victim not in seen else None

    after = wait_until(both_answering, what="both workers answering")
    assert sorted(after.values()) == [0, 1]


def test_hup_keeps_in_flight_message_and_new_connections(gunicorn, tmp_path):
    port = free_port()
    g = start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=2)
    slow = LineClient(port, timeout=10)
    slow.send("sleep 2")
    errors, ok = [], [0]
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                c = LineClient(port)
                assert c.request("ping") == "ping"
                c.close()
                ok[0] += 1
            except Exception as exc:  # counted, not raised: the assertion is below
                errors.append(repr(exc))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.3)
        for n in range(3):
            g.signal(signal.SIGHUP)
            g.wait_ready(2 * (n + 2), timeout=45)
            time.sleep(0.3)
        assert slow.recv() == "slept 2"
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    print(f"3 HUPs: {ok[0]} connections OK, {len(errors)} errors")
    assert not errors, errors[:5]
    assert ok[0] > 50
    assert events(tmp_path).count("reload") >= 2


def test_udp_paced_stream_across_hup_loses_nothing(gunicorn, tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    g = start_core(gunicorn, tmp_path, f"udp://127.0.0.1:{port}", workers=2)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    received: set[int] = set()

    def reader():
        try:
            while len(received) < 1000:
                data, _ = s.recvfrom(100)
                received.add(int(data))
        except OSError:
            pass

    s.sendto(b"-1", ("127.0.0.1", port))  # make the socket bound before the reader starts
    s.recvfrom(100)
    t = threading.Thread(target=reader)
    t.start()
    for i in range(1000):
        s.sendto(str(i).encode(), ("127.0.0.1", port))
        if i == 300:
            g.signal(signal.SIGHUP)
        time.sleep(0.002)
    t.join(10)
    s.close()
    assert len(received) == 1000, f"lost {1000 - len(received)} datagrams"


def test_term_closes_idle_at_once_and_finishes_in_flight(gunicorn, tmp_path):
    port = free_port()
    g = start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=2,
                   args=["--graceful-timeout", "20"])
    idle = [LineClient(port, timeout=10) for _ in range(5)]
    for c in idle:
        assert c.request("hi") == "hi"
    busy = LineClient(port, timeout=10)
    busy.send("sleep 1")
    time.sleep(0.2)
    t0 = time.monotonic()
    g.signal(signal.SIGTERM)
    for c in idle:
        assert c.file.readline() == b""
    assert time.monotonic() - t0 < 1.0, "idle connections were not closed promptly"
    assert busy.recv() == "slept 1"
    g.proc.wait(timeout=10)
    assert time.monotonic() - t0 < 5, "the worker waited for graceful_timeout"
    opened = {e.split()[1] for e in events(tmp_path) if e.startswith("connect")}
    closed = [e.split()[1] for e in events(tmp_path) if e.startswith("close")]
    assert sorted(closed) == sorted(opened)  # on_close exactly once each, at shutdown too


def test_quit_stops_quickly_and_still_runs_on_close(gunicorn, tmp_path):
    port = free_port()
    g = start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=1,
                   args=["--graceful-timeout", "20"])
    busy = LineClient(port, timeout=10)
    busy.send("sleep 10")
    time.sleep(0.3)
    t0 = time.monotonic()
    g.signal(signal.SIGQUIT)
    g.proc.wait(timeout=10)
    assert time.monotonic() - t0 < 3
    assert [e.split()[0] for e in events(tmp_path)].count("close") == 1


def test_max_requests_recycles_the_worker(gunicorn, tmp_path):
    port = free_port()
    start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=1,
               args=["--max-requests", "5"])
    c = LineClient(port)
    first = c.request("pid")
    for i in range(5):
        assert c.request(f"m{i}") == f"m{i}"  # every message answered before the restart

    def new_pid():
        try:
            pid = LineClient(port).request("pid")
        except OSError:
            return None
        return pid if pid and pid != first else None

    wait_until(new_pid, timeout=10, what="a new worker after max_requests")


USER_APP = """
import os
from geworker import Server

server = Server(f"text://127.0.0.1:{os.environ['PORT_A']}")

@server.on_message
def ids(conn, message):
    conn.send(f"{os.getuid()} {os.getgid()} {os.getgroups()}")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")
def test_user_switch_uses_the_users_primary_group(gunicorn, tmp_path):
    # The app is imported after the switch, so it only uses modules the worker
    # already loaded (this machine's Python may live where nobody cannot read).
    import pwd

    nobody = pwd.getpwnam("nobody")
    port = free_port()
    for directory in (tmp_path, *tmp_path.parents):
        directory.chmod(directory.stat().st_mode | 0o005)  # the app must be readable by nobody
        if directory == Path("/tmp"):
            break
    gunicorn(USER_APP, args=["--user", "nobody"], env={"PORT_A": str(port)})
    uid, gid, groups = LineClient(port).request("ids").split(" ", 2)
    assert int(uid) == nobody.pw_uid
    assert int(gid) == nobody.pw_gid != 0
    assert json.loads(groups) == []


def run_gunicorn(tmp_path: Path, source: str, *args: str, timeout: float = 30):
    (tmp_path / "app.py").write_text(source)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "gunicorn", "-k", "geworker.Worker",
                           "--no-control-socket", *args, "app:server"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_explicit_bind_that_disagrees_fails_the_boot(tmp_path):
    port, other = free_port(), free_port()
    source = f"from geworker import Server\nserver = Server('text://127.0.0.1:{port}')\n"
    result = run_gunicorn(tmp_path, source, "--bind", f"127.0.0.1:{other}")
    assert result.returncode == 3
    assert f"127.0.0.1:{port}" in result.stderr and "lacks" in result.stderr


def test_broken_app_fails_the_boot_without_crash_loop(tmp_path):
    result = run_gunicorn(tmp_path, "from geworker import Server\nserver = Server(\n")
    assert result.returncode == 3
    assert "SyntaxError" in result.stderr
    assert "Booting worker" not in result.stderr


def test_failing_on_worker_start_halts_gunicorn(tmp_path):
    port = free_port()
    source = (CORE_APP if False else
              "from geworker import Server\n"
              f"server = Server('text://127.0.0.1:{port}')\n"
              "@server.on_worker_start\n"
              "def start(worker):\n    raise RuntimeError('cannot start')\n")
    result = run_gunicorn(tmp_path, source, "-w", "2")
    assert result.returncode == 3
    assert "cannot start" in result.stderr
    assert result.stderr.count("Booting worker") <= 2


def test_custom_protocol_registered_in_the_app(gunicorn):
    port = free_port()
    source = f"""
from geworker import Server, WorkermanProtocol, register_protocol

class LengthLine(WorkermanProtocol):
    def input(self, buffer):
        colon = buffer.find(b":")
        return 0 if colon < 0 else colon + 1 + int(buffer[:colon])
    def decode(self, package):
        return package.split(b":", 1)[1].decode()
    def encode(self, message):
        return f"{{len(message)}}:{{message}}".encode()

register_protocol("lenline", LengthLine)
server = Server("lenline://127.0.0.1:{port}")

@server.on_message
def upper(conn, message):
    conn.send(message.upper())
"""
    gunicorn(source)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"5:hello3:")
        s.sendall(b"abc")
        data = b""
        while len(data) < 12:
            data += s.recv(100)
        assert data == b"5:HELLO3:ABC"


def test_server_called_as_wsgi_app_explains_itself():
    from geworker import Server

    statuses = []
    body = Server("text://127.0.0.1:1")({}, lambda status, headers: statuses.append(status))
    assert statuses == ["500 Internal Server Error"]
    assert b"-k geworker.Worker" in b"".join(body)


def test_frame_helper_roundtrip_used_by_tests():
    assert struct.pack(">I", 4) == b"\x00\x00\x00\x04"
    assert pid_alive(os.getpid())


RELOAD_APP = """
import os
from geworker import Server

VERSION = "v1"
with open("imports.log", "a") as f:
    f.write(f"{os.getpid()}\\n")

server = Server(f"text://127.0.0.1:{os.environ['PORT_A']}")

@server.on_message
def version(conn, message):
    conn.send(VERSION)
"""


def test_app_never_imported_in_master_and_hup_loads_new_code(gunicorn, tmp_path):
    port = free_port()
    g = gunicorn(RELOAD_APP, workers=2, env={"PORT_A": str(port)})
    assert LineClient(port).request("?") == "v1"
    (tmp_path / "app.py").write_text(RELOAD_APP.replace('"v1"', '"v2"'))
    g.signal(signal.SIGHUP)
    g.wait_ready(4)
    wait_until(lambda: LineClient(port).request("?") == "v2", what="new code after HUP")
    importers = {int(p) for p in (tmp_path / "imports.log").read_text().split()}
    assert g.pid not in importers  # the master only probes, in a subprocess


def test_workers_exit_when_the_master_dies(gunicorn, tmp_path):
    port = free_port()
    g = start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=2)
    workers = g.worker_pids()
    assert len(workers) == 2
    os.kill(g.pid, signal.SIGKILL)
    wait_until(lambda: not any(pid_alive(p) for p in workers), timeout=10,
               what="orphaned workers to exit")


def test_shipped_gunicorn_conf(tmp_path):
    port = free_port()
    root = ROOT
    (tmp_path / "app.py").write_text(RELOAD_APP)
    env = dict(os.environ, PYTHONPATH=str(root), PORT_A=str(port), WEB_CONCURRENCY="2")
    proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", str(root / "gunicorn_conf.py"),
                             "app:server"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        def control_socket() -> str | None:  # the master moves it into the run directory
            for master in tmp_path.glob(".geworker/app-server-*/master.json"):
                path = json.loads(master.read_text()).get("control_socket")
                if path and os.path.exists(path):
                    return path
            return None

        ctl = wait_until(control_socket, timeout=45, what="control socket")
        wait_until(lambda: _answers(port), timeout=45, what="echo via gunicorn_conf.py")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        finally:
            os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    assert proc.returncode == 0
    check_server_log(proc.stderr.read(), "gunicorn -c gunicorn_conf.py")
    assert ctl != Config().control_socket  # never the one-per-user default


def _answers(port: int) -> bool:
    try:
        return LineClient(port).request("?") == "v1"
    except OSError:
        return False


TIMER_SCRIPT = """
import logging, gevent
from geworker import timers

logging.basicConfig(level=logging.ERROR)
calls = []
once = timers.add(0.01, calls.append, "once", repeat=False)
every = timers.add(0.01, calls.append, "every")
cancelled = timers.add(0.01, calls.append, "never")
assert timers.cancel(cancelled) and not timers.cancel(cancelled)
timers.add(0.01, lambda: 1 / 0, repeat=False)
gevent.sleep(0.105)
assert timers.count() == 1, timers.count()
assert timers.cancel_all() == 1 and timers.count() == 0
n = calls.count("every")
gevent.sleep(0.05)
assert calls.count("every") == n and calls.count("once") == 1 and "never" not in calls
assert 6 <= n <= 11, n
print("ok", once, every)
"""


def test_timer_api_one_shot_args_cancel():
    result = subprocess.run([sys.executable, "-c", TIMER_SCRIPT], capture_output=True, text=True,
                            timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok")
    assert "ZeroDivisionError" in result.stderr  # a failing timer is logged, nothing else breaks


def test_connections_spread_evenly_across_workers(gunicorn, tmp_path):
    port = free_port()
    start_core(gunicorn, tmp_path, f"text://127.0.0.1:{port}", workers=2)
    clients = [LineClient(port) for _ in range(100)]  # a burst, as a load generator makes
    per_worker: dict[str, int] = {}
    for c in clients:
        pid = c.request("pid")
        per_worker[pid] = per_worker.get(pid, 0) + 1
    print(f"100 connections per worker: {sorted(per_worker.values())}")
    assert len(per_worker) == 2
    assert all(38 <= n <= 62 for n in per_worker.values()), per_worker


SLOW_BOOT_APP = """
import os, time
from geworker import Server

if os.environ.get("GEWORKER_PROBE") is None:
    time.sleep(1.5)  # a slow import, in the worker
server = Server(f"text://127.0.0.1:{os.environ['PORT_A']}")
"""


def test_term_while_a_worker_boots_is_not_lost(gunicorn, tmp_path):
    port = free_port()
    g = gunicorn(SLOW_BOOT_APP, workers=2, env={"PORT_A": str(port)}, wait=False,
                 args=["--graceful-timeout", "30"])
    wait_until(lambda: g.log().count("Booting worker") == 2, timeout=45, what="workers booting")
    t0 = time.monotonic()
    g.signal(signal.SIGTERM)
    g.proc.wait(timeout=20)
    assert time.monotonic() - t0 < 6, "a TERM received during boot was ignored"


BROADCAST_APP = """
import os
from geworker import Server

server = Server(f"text://127.0.0.1:{os.environ['PORT_A']}")

@server.on_message
def on_message(conn, message):
    if message.startswith("all "):
        server.broadcast(message[4:], all_workers=True)
    elif message == "pid":
        conn.send(str(os.getpid()))
"""


def test_broadcast_to_all_workers(gunicorn):
    port = free_port()
    gunicorn(BROADCAST_APP, workers=2, env={"PORT_A": str(port)})
    clients = [LineClient(port) for _ in range(20)]
    pids = {c.request("pid") for c in clients}
    assert len(pids) == 2  # connections on both workers
    clients[0].send("all hello everyone")
    assert [c.recv() for c in clients] == ["hello everyone"] * 20
