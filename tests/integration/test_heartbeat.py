"""Heartbeats and slow consumers with real gunicorn: who is closed, when, and what the rest see."""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time

import pytest
import websocket

from conftest import ROOT, LineClient, free_port, wait_until

APP = """
import json, os, time
from geworker import Server

EVENTS = os.environ["EVENTS"]
server = Server(name="hb")
server.listen(f"text://127.0.0.1:{os.environ['TEXT_PORT']}", heartbeat_interval=0.4,
              heartbeat_missed_limit=2, heartbeat_data="ping")
server.listen(f"websocket://127.0.0.1:{os.environ['WS_PORT']}", heartbeat_interval=0.4,
              heartbeat_missed_limit=2)
server.listen(f"frame://127.0.0.1:{os.environ['FRAME_PORT']}", heartbeat_interval=0.4,
              heartbeat_missed_limit=3)  # detect only: no heartbeat_data

@server.on_message
def on_message(conn, message):
    if message in ("pong", "ping", b"pong"):
        return
    conn.send(message)

@server.on_close
def on_close(conn):
    with open(EVENTS, "a") as f:
        f.write(json.dumps({"port": conn.local_address[1], "t": time.time(),
                            "code": getattr(conn, "close_code", None)}) + "\\n")
"""


def closes(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def hb(gunicorn, tmp_path):
    ports = {"TEXT_PORT": free_port(), "WS_PORT": free_port(), "FRAME_PORT": free_port()}
    events = tmp_path / "closes.jsonl"
    g = gunicorn(APP, workers=1, env={"EVENTS": str(events), **{k: str(v) for k, v in
                                                                ports.items()}})
    return g, ports, events


STOPPED_CLIENT = """
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"hello\\n")
print(s.recv(100).decode().strip(), flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(60)
def test_silent_peers_are_closed_and_talking_ones_kept(hb):
    g, ports, events = hb
    port = ports["TEXT_PORT"]
    alive = LineClient(port)
    assert alive.request("hi") == "hi"
    # A client that answers every ping stays; it sees the pings.
    # A client process stopped with SIGSTOP, and one that never reads, go.
    stopped = subprocess.Popen([sys.executable, "-c", STOPPED_CLIENT, str(port)],
                               stdout=subprocess.PIPE, text=True)
    assert stopped.stdout.readline().strip() == "hello"
    deaf = socket.create_connection(("127.0.0.1", port))
    deaf.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    t0 = time.time()
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        pings = 0
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            line = alive.recv()
            assert line == "ping"
            pings += 1
            alive.send("pong")
        assert pings >= 5  # about one per 0.4 s
        got = wait_until(lambda: len(closes(events)) >= 2 and closes(events), 5,
                         what="both silent clients closed")
        assert len(got) == 2  # the answering client is still open
        after = ", ".join(f"{c['t'] - t0:.2f}" for c in got)
        print(f"\nheartbeat 0.4 s x 2: silent clients closed after {after} s")
        for close in got:
            # closed between (limit - 1) and limit intervals after its last byte, plus slack
            assert 0.4 <= close["t"] - t0 <= 0.8 + 0.5, close["t"] - t0
        assert alive.request("still here") == "still here"
        assert g.log().count("heartbeat(s) of 0.4s") == 2
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
        stopped.kill()
        stopped.wait(5)
        deaf.close()


@pytest.mark.timeout(60)
def test_websocket_gets_ping_frames_and_a_silent_one_is_closed_with_1011(hb):
    _, ports, events = hb
    url = f"ws://127.0.0.1:{ports['WS_PORT']}/"
    talker = websocket.create_connection(url, timeout=5)
    talker.settimeout(2)
    pings = 0
    silent = websocket.create_connection(url, timeout=5)
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        opcode, _ = talker.recv_data(control_frame=True)  # answers the ping with a pong
        if opcode == websocket.ABNF.OPCODE_PING:
            pings += 1
    assert pings >= 4
    got = wait_until(lambda: closes(events), 5, what="the silent WebSocket closed")
    assert [c["code"] for c in got] == [1011]
    talker.send("echo")
    while (frame := talker.recv_data(control_frame=True))[0] != websocket.ABNF.OPCODE_TEXT:
        pass
    assert frame[1] == b"echo"
    silent.close()
    talker.close()


@pytest.mark.timeout(60)
def test_detect_only_heartbeat_sends_nothing(hb):
    _, ports, events = hb
    s = socket.create_connection(("127.0.0.1", ports["FRAME_PORT"]), timeout=5)
    t0 = time.time()
    s.settimeout(3)
    assert s.recv(100) == b""  # closed without a byte: no heartbeat_data on this listener
    elapsed = time.time() - t0
    assert 0.8 <= elapsed <= 1.2 + 0.5, elapsed
    wait_until(lambda: len(closes(events)) == 1, 5, what="on_close ran")


SLOW_APP = """
import os
from geworker import Server, timers
server = Server(f"websocket://127.0.0.1:{os.environ['WS_PORT']}", name="stream",
                max_send_buffer_size=64 * 1024, socket_send_buffer=32 * 1024,
                **({"send_queue_timeout": 1.0}
                                                    if os.environ.get("CLOSE") else {}))
CHUNK = "x" * 10_000
state = {"seq": 0}

def tick():
    state["seq"] += 1
    server.broadcast(f"{state['seq']:08d}" + CHUNK)

@server.on_worker_start
def start(worker):
    timers.add(0.05, tick)  # 10 KB x 20/s to everyone

@server.on_message
def on_message(conn, message):
    pass
"""


HANDSHAKE = (b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def _stream_clients(port: int, readers: int, deaf: int):
    socks = []
    for i in range(readers + deaf):
        s = socket.create_connection(("127.0.0.1", port))
        if i >= readers:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # never reads a byte
        s.sendall(HANDSHAKE)
        socks.append(s)
    return socks[:readers], socks[readers:]


def _read_stream(clients, seconds: float) -> list[list[int]]:
    """The sequence numbers each reader got (server frames: unmasked, 16-bit lengths)."""
    sel = selectors.DefaultSelector()
    buffers = {}
    seqs: dict[socket.socket, list[int]] = {s: [] for s in clients}
    for s in clients:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        buffers[s] = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for key, _ in sel.select(0.05):
            s = key.fileobj
            data = buffers[s] + s.recv(1 << 20)
            if data.startswith(b"HTTP/1.1 101"):
                data = data[data.index(b"\r\n\r\n") + 4:]
            while len(data) >= 4:
                length = data[1] & 0x7F
                head = 4 if length == 126 else 2
                if length == 126:
                    length = int.from_bytes(data[2:4], "big")
                if len(data) < head + length:
                    break
                seqs[s].append(int(data[head:head + 8]))
                data = data[head + length:]
            buffers[s] = data
    sel.close()
    return [seqs[s] for s in clients]


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("policy", ["drop", "close"])
def test_slow_consumers_never_slow_the_readers(gunicorn, tmp_path, policy):
    port = free_port()
    env = {"WS_PORT": str(port), **({"CLOSE": "1"} if policy == "close" else {})}
    g = gunicorn(SLOW_APP, workers=1, env=env)
    (worker,) = g.worker_pids()
    readers, deaf = _stream_clients(port, 950, 50)  # 1,000 clients, 50 never read
    _read_stream(readers, 0.5)  # (settle)
    seqs = _read_stream(readers, 4.0)
    for got in seqs:  # every reader gets every message, in order, none missing
        assert got and got == list(range(got[0], got[0] + len(got)))
        assert len(got) >= 40  # about 20/s
    # the deaf clients' queues stay bounded: 50 x 64 KiB plus the kernel's buffers
    rss = _rss(worker)
    print(f"{policy}: worker RSS {rss / 2**20:.1f} MiB, per reader "
          f"{min(map(len, seqs))}-{max(map(len, seqs))} messages in 4 s")
    assert rss < 150 * 2**20
    out = subprocess.run([sys.executable, "-m", "geworker.ops.cli", "status", "--json",
                          "--run-dir", str(next((tmp_path / ".geworker").iterdir()))],
                         capture_output=True, text=True, timeout=30, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    counters = json.loads(out.stdout)["workers"][0]["counters"]
    if policy == "drop":
        assert counters["send_failures"] > 50  # the deaf ones drop, and stay
        assert counters["connections_closed"] == 0
    else:
        assert counters["errors"]["slow_consumer"] == 50
        assert counters["connections_closed"] == 50
        assert g.log().count("(slow consumer)") == 50
    for s in readers + deaf:
        s.close()


MANY_APP = """
import os
from geworker import Server
server = Server(f"text://127.0.0.1:{os.environ['TEXT_PORT']}", name="many",
                heartbeat_interval=5.0, heartbeat_missed_limit=2, heartbeat_data="p")

@server.on_message
def on_message(conn, message):
    pass  # the clients' answers to the pings: anything received counts as alive
"""


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.timeout(180)
def test_ten_thousand_connections_with_a_five_second_heartbeat_stay_parked(gunicorn, tmp_path):
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 12000)), hard))
    port = free_port()
    g = gunicorn(MANY_APP, workers=1, env={"TEXT_PORT": str(port)}, args=["--backlog", "4096"])
    (worker,) = g.worker_pids()
    sel = selectors.DefaultSelector()
    socks = []
    pings = {}
    try:
        for _ in range(10_000):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
            socks.append(s)
            pings[s] = 0
        run_dir = next((tmp_path / ".geworker").iterdir())

        def parked() -> int:
            out = subprocess.run([sys.executable, "-m", "geworker.ops.cli", "status", "--json",
                                  "--run-dir", str(run_dir)], capture_output=True, text=True,
                                 timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
            return int(json.loads(out.stdout)["workers"][0]["counters"]["connections_parked"])

        cpu0, t0 = _cpu_seconds(worker), time.monotonic()
        best_parked: dict[int, int] = {}  # the highest count seen between each pair of ticks
        while time.monotonic() - t0 < 16:  # three ticks or more
            for key, _ in sel.select(0.2):
                data = key.fileobj.recv(100)
                if data:
                    pings[key.fileobj] += data.count(b"p")
                    key.fileobj.send(b"k\n")  # alive
            window, since_tick = divmod(time.monotonic() - t0, 5)
            if 2.5 < since_tick < 4.5:  # between ticks: answered, then parked again
                best_parked[int(window)] = max(best_parked.get(int(window), 0), parked())
        cpu = (_cpu_seconds(worker) - cpu0) / (time.monotonic() - t0)
        least_parked = min(best_parked.values())
        print(f"10,000 connections, heartbeat 5 s: worker CPU {cpu * 100:.1f}% of a core, "
              f"{least_parked} or more parked between ticks")
        assert min(pings.values()) >= 2  # every connection got its pings
        assert len(best_parked) >= 3 and least_parked >= 9_500
        assert "heartbeat(s)" not in g.log()  # nobody answering was closed
    finally:
        for s in socks:
            s.close()
        sel.close()
