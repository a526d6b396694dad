"""Hostile clients with real gunicorn: the others keep their latency, the worker stays bounded."""

from __future__ import annotations

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
