"""Optional metrics with real gunicorn: Prometheus multiprocess endpoint and statsd."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import urllib.request

import pytest

from conftest import LineClient, free_port, wait_until
from support.ops import instances

__all__ = ["instances"]


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    values = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def test_prometheus_endpoint_aggregates_workers(instances):
    pytest.importorskip("prometheus_client")
    inst = instances(port=free_port())
    metrics_port = free_port()
    result = inst.cli("start", "-d", "app:server", "-w", "2", "--prometheus",
                      f"127.0.0.1:{metrics_port}")
    assert result.returncode == 0, result.stderr + inst.log()
    workers = inst.wait_workers(2)
    clients = [LineClient(inst.port) for _ in range(4)]
    for i, c in enumerate(clients):
        assert c.request(f"m{i}") == f"m{i}"

    def counted():
        values = scrape(metrics_port)
        return values if values.get("geworker_messages_in_total", 0) >= 4 else None

    values = wait_until(counted, 10, interval=0.2, what="messages counted")
    assert values["geworker_connections"] == 4
    assert values["geworker_connections_accepted_total"] == 4
    assert values["geworker_bytes_in_total"] == sum(len(f"m{i}\n") for i in range(4))
    assert values["geworker_timers"] == 2
    assert values["geworker_messaging_connected"] == 2  # both workers joined the bus
    assert values["geworker_messaging_uids"] == 0
    assert (inst.run_dir / "prometheus").is_dir()
    # the four clients are silent now: their connections park within a few seconds
    wait_until(lambda: scrape(metrics_port).get("geworker_connections_parked") == 4, 10,
               interval=0.2, what="parked connections gauge")

    os.kill(workers[0], signal.SIGKILL)
    inst.wait_workers(2, exclude={workers[0]})
    values = wait_until(
        lambda: (v := scrape(metrics_port)).get(
            'geworker_worker_exits_total{status="killed by SIGKILL"}') == 1 and v,
        10, interval=0.2, what="exit counted")
    # the dead worker's live gauge is gone: only the survivor's connections remain
    alive = [c for c in clients if c.request("x") == "x"]
    assert values["geworker_messages_in_total"] >= 4  # counters of dead workers are kept
    wait_until(lambda: scrape(metrics_port)["geworker_connections"] == len(alive), 10,
               interval=0.2, what="live connections gauge")
    assert inst.cli("reload").returncode == 0
    wait_until(lambda: scrape(metrics_port).get("geworker_reloads_total") == 1, 10,
               interval=0.2, what="reload counted")


def test_statsd_through_gunicorns_logger(instances):
    inst = instances(port=free_port())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as statsd:
        statsd.bind(("127.0.0.1", 0))
        statsd.settimeout(0.2)
        result = inst.cli("start", "-d", "app:server", "-w", "1", "--statsd-host",
                          f"127.0.0.1:{statsd.getsockname()[1]}")
        assert result.returncode == 0, result.stderr + inst.log()
        inst.wait_workers(1)
        c = LineClient(inst.port)
        assert c.request("hello") == "hello"
        wanted = ["geworker.messages.in:1|c", "geworker.connections.accepted:1|c",
                  "geworker.worker.0.connections:1|g", "geworker.bytes.in:6|c",
                  "geworker.messages.out:1|c", "geworker.bytes.out:6|c"]
        packets: list[str] = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                packets.append(statsd.recv(2048).decode())
            text = "\n".join(packets)
            if all(w in text for w in wanted):
                break
        text = "\n".join(packets)
    for w in wanted:
        assert w in text
    assert "geworker: " not in inst.log().split("serving")[-1]  # metrics add no log lines
