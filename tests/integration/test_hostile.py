"""Hostile clients with real gunicorn: the others keep their latency, the worker stays bounded."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, LineClient, free_port, wait_until

ECHO = """
import os
from geworker import Server
server = Server(f"text://127.0.0.1:{os.environ['PORT']}", max_send_buffer_size=256 * 1024,
                socket_send_buffer=32 * 1024)

@server.on_message
def echo(conn, message):
    conn.send(message)
"""


def latencies(port: int, count: int = 100) -> list[float]:
    client = LineClient(port, timeout=10)
    out = []
    for i in range(count):
        t0 = time.monotonic()
        assert client.request(f"probe {i}") == f"probe {i}"
        out.append(time.monotonic() - t0)
        time.sleep(0.01)
    client.close()
    return sorted(out)


def worker_counters(tmp_path) -> dict:
    out = subprocess.run([sys.executable, "-m", "geworker.ops.cli", "status", "--json",
                          "--run-dir", str(next((tmp_path / ".geworker").iterdir()))],
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return json.loads(out.stdout)["workers"][0]["counters"]


@pytest.mark.timeout(120)
def test_clients_that_flood_and_never_read_are_paused_not_served(gunicorn, tmp_path):
    port = free_port()
    g = gunicorn(ECHO, workers=1, env={"PORT": str(port)})
    baseline = latencies(port)
    stop = threading.Event()
    line = b"x" * 63 + b"\n"

    def flood() -> None:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        chunk = line * 1024
        while not stop.is_set():
            try:
                s.sendall(chunk)
            except TimeoutError:
                continue  # the server stopped reading from us: good
            except OSError:
                break
        s.close()

    threads = [threading.Thread(target=flood, daemon=True) for _ in range(200)]
    for t in threads:
        t.start()
    try:
        # Each flooder is paused once its kernel buffers and its send queue are full.
        wait_until(lambda: worker_counters(tmp_path)["errors"].get("read_paused") == 200, 30,
                   interval=0.2, what="every flooder paused")
        read_before = worker_counters(tmp_path)["bytes_in"]
        time.sleep(3)
        read_during = worker_counters(tmp_path)["bytes_in"] - read_before
        under_flood = latencies(port)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
    p50, p99 = under_flood[len(under_flood) // 2], under_flood[98]
    print(f"\nflood of 200 non-reading clients: probe p50 {p50 * 1000:.1f} ms p99 "
          f"{p99 * 1000:.1f} ms (baseline p50 {baseline[50] * 1000:.1f} ms p99 "
          f"{baseline[98] * 1000:.1f} ms); read {read_during / 2**20:.1f} MiB in 3 s")
    # Once paused, the flooders cost nothing: the worker reads next to nothing from them
    # (it read 14.9 GB when it kept reading) and the probe stays fast.
    assert read_during < 20 * 2**20
    assert p99 < max(0.1, baseline[98] * 20)
    counters = worker_counters(tmp_path)
    assert counters["errors"]["read_paused"] == 200
    assert g.log().count("does not read its answers") == 200


STALL_APP = """
import os
from geworker import Server
server = Server(message_timeout=1.5)
server.listen(f"text://127.0.0.1:{os.environ['TEXT_PORT']}")
server.listen(f"websocket://127.0.0.1:{os.environ['WS_PORT']}")

@server.on_message
def echo(conn, message):
    conn.send(message)
"""


@pytest.mark.timeout(90)
def test_a_message_begun_must_finish_idle_connections_may_stay(gunicorn):
    text, ws = free_port(), free_port()
    g = gunicorn(STALL_APP, workers=1, env={"TEXT_PORT": str(text), "WS_PORT": str(ws)})
    idle = socket.create_connection(("127.0.0.1", text), timeout=10)  # says nothing: stays
    busy = LineClient(text)  # a steady stream whose reads often end mid-line: stays
    slow_line = socket.create_connection(("127.0.0.1", text), timeout=10)
    slow_line.sendall(b"this line never ends")
    slow_ws = socket.create_connection(("127.0.0.1", ws), timeout=10)
    slow_ws.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                    b"Sec-WebSocket-Version: 13\r\n\r\n")
    assert slow_ws.recv(4096).startswith(b"HTTP/1.1 101")
    t0 = time.monotonic()
    frame = b"\x81\x85" + b"\x00" * 4 + b"hello"  # masked text frame, sent byte by byte
    closed = {}
    deadline = t0 + 6
    i = 0
    while time.monotonic() < deadline and len(closed) < 2:
        busy.sock.sendall(b"x" * 700 + b"\n" + b"y" * 300)  # (the rest of the line next time)
        busy.sock.sendall(b"\n")
        assert busy.recv() == "x" * 700 and busy.recv() == "y" * 300
        if i < len(frame) and time.monotonic() - t0 > i * 0.5:  # a byte every 0.5 s
            with contextlib.suppress(OSError):
                slow_ws.sendall(frame[i:i + 1])
            i += 1
        for name, s in (("line", slow_line), ("ws", slow_ws)):
            if name in closed:
                continue
            s.settimeout(0.01)
            try:
                data = s.recv(4096)
            except TimeoutError:
                continue
            if not data or data.startswith(b"\x88"):
                closed[name] = (time.monotonic() - t0, data)
    assert set(closed) == {"line", "ws"}, closed
    assert 1.5 <= closed["line"][0] <= 1.5 + 1.0 + 0.5
    assert closed["ws"][1][:4] == b"\x88\x11\x03\xf0"  # close frame, 1008 "message timeout"
    assert g.log().count("is still incomplete (message_timeout=1.5s)") == 2
    idle.settimeout(0.5)
    with pytest.raises(TimeoutError):
        idle.recv(1)  # the idle one is still open
    assert busy.request("still") == "still"


UDP_APP = """
import os, time
from geworker import Server
server = Server(f"udp://127.0.0.1:{os.environ['UDP_PORT']}")

@server.on_message
def slow_echo(conn, message):
    time.sleep(0.05)  # (patched: handlers pile up while the flood lasts)
    conn.send(message[:10])
"""


@pytest.mark.timeout(90)
def test_a_flood_of_large_datagrams_keeps_the_worker_bounded(gunicorn):
    port = free_port(socket.SOCK_DGRAM)
    g = gunicorn(UDP_APP, workers=1, env={"UDP_PORT": str(port)},
                 args=["--worker-connections", "10000"])
    (worker,) = g.worker_pids()

    def rss() -> int:
        with open(f"/proc/{worker}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    before = rss()
    payload = os.urandom(65_507)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        deadline = time.monotonic() + 4
        sent = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                s.sendto(payload, ("127.0.0.1", port))
                sent += 1
        peak = rss()
        # Still serving: a request gets its answer.
        s.settimeout(5)
        time.sleep(1)
        with contextlib.suppress(TimeoutError):
            while True:
                s.settimeout(0.2)
                s.recvfrom(100)  # (drain answers to the flood)
        s.settimeout(5)
        s.sendto(b"ping-after", ("127.0.0.1", port))
        assert s.recvfrom(100)[0] == b"ping-after"
    growth = (peak - before) / 2**20
    print(f"\nUDP flood: {sent} datagrams of 65,507 bytes in 4 s, worker RSS +{growth:.0f} MiB")
    assert growth < 100  # 256 in hand x 64 KiB; it grew by 632 MiB when bounded by 10,000


HOG_APP = """
import os
from geworker import Server
server = Server(f"text://127.0.0.1:{os.environ['PORT']}")
held = []

@server.on_message
def on_message(conn, message):
    if message == "hog":  # the app leaks descriptors until none is left
        try:
            while True:
                held.append(open(os.devnull))
        except OSError:
            pass
        conn.send(f"holding {len(held)}")
    elif message == "free":
        while held:
            held.pop().close()
        conn.send("freed")
    else:
        conn.send(message)
"""


@pytest.mark.timeout(90)
def test_out_of_descriptors_accept_pauses_logs_once_and_recovers(gunicorn):
    port = free_port()
    g = gunicorn(HOG_APP, workers=1, env={"PORT": str(port)})
    (worker,) = g.worker_pids()
    hog = LineClient(port)
    assert hog.request("hog").startswith("holding ")
    waiting = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(20)]
    for s in waiting:
        s.sendall(b"hello\n")

    def cpu() -> float:
        with open(f"/proc/{worker}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    wait_until(lambda: "cannot accept" in g.log(), 10, what="the exhaustion logged")
    before, t0 = cpu(), time.monotonic()
    time.sleep(1.5)
    share = (cpu() - before) / (time.monotonic() - t0)
    assert share < 0.3, f"{share:.0%} of a core while out of descriptors"
    assert hog.request("free") == "freed"
    for s in waiting:  # every waiting client is accepted and answered once descriptors are free
        assert s.makefile("rb").readline() == b"hello\n"
        s.close()
    log = g.log()
    assert log.count("cannot accept: Too many open files") == 1
    assert "Traceback" not in log
