"""Parking: silent connections give up their greenlet and come back on input.

Real gunicorn, ``park_after=0.2``; the app reports ``counters.connections_parked``
so every test can see that connections really parked before it checks what
a parked connection must still do (answer, receive sends and broadcasts,
close, time out, drain, count against ``worker_connections``).
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from conftest import LineClient, free_port, wait_until

APP = """
import json, os
import gevent
from geworker import Server
from geworker.stats import counters

ports = {k: int(v) for k, v in os.environ.items() if k.endswith("_PORT")}
server = Server(name="parking", park_after=0.2)
server.listen(f"text://127.0.0.1:{ports['TEXT_PORT']}")
server.listen(f"text://127.0.0.1:{ports['IDLE_PORT']}", idle_timeout=1.5)
server.listen(f"websocket://127.0.0.1:{ports['WS_PORT']}")
server.listen(f"http://127.0.0.1:{ports['HTTP_PORT']}")
if os.environ.get("CERT"):
    server.listen(f"text+tls://127.0.0.1:{ports['TLS_PORT']}")

def record(line):
    with open(os.path.join(os.environ["EVENTS_DIR"], f"events.{os.getpid()}"), "a") as f:
        f.write(line + "\\n")

@server.on_close
def closed(conn):
    if not conn.context.get("probe"):
        record(f"close {conn.id}")

@server.on_message
def on_message(conn, message):
    if hasattr(message, "method"):
        conn.send("plain http")
        return
    command, _, arg = message.partition(" ")
    if command == "stats":
        conn.context["probe"] = True
        conn.send(json.dumps({"parked": counters.connections_parked,
                              "open": len(server.connections)}))
    elif command == "later":
        gevent.spawn_later(float(arg), conn.send, "later")
        conn.send("ok")
    elif command == "close-later":
        gevent.spawn_later(float(arg), conn.close, "bye")
        conn.send("ok")
    elif command == "broadcast":
        server.broadcast("to all")
    else:
        conn.send(message)

server.on_websocket_message = on_message  # upgraded http:// connections
"""


@pytest.fixture
def srv(gunicorn, tmp_path):
    def start(workers=1, args=None, **env):
        ports = {name: free_port() for name in ("TEXT_PORT", "IDLE_PORT", "WS_PORT",
                                                  "HTTP_PORT", "TLS_PORT")}
        g = gunicorn(APP, workers=workers, args=args,
                     env={**{k: str(v) for k, v in ports.items()}, "EVENTS_DIR": str(tmp_path),
                          **env})
        g.ports = ports
        return g

    return start


def stats(port: int) -> dict:
    probe = LineClient(port)
    try:
        return json.loads(probe.request("stats"))
    finally:
        probe.close()


def wait_parked(port: int, count: int, timeout: float = 10.0) -> None:
    """Until ``count`` connections are parked (the asking connection is busy, never parked)."""
    wait_until(lambda: stats(port)["parked"] == count, timeout=timeout,
               what=f"{count} parked connections")


def closes(tmp_path: Path) -> int:
    """How many connections (other than ``stats`` probes) ran ``on_close``."""
    return sum(f.read_text().count("close ") for f in tmp_path.glob("events.*"))


def test_parked_connections_answer_receive_and_park_again(srv):
    g = srv()
    port = g.ports["TEXT_PORT"]
    clients = [LineClient(port) for _ in range(20)]
    for i, c in enumerate(clients):
        assert c.request(f"hi {i}") == f"hi {i}"
    later = LineClient(port)
    assert later.request("later 1.0") == "ok"
    wait_parked(port, 21)
    assert later.recv() == "later"  # a send from another greenlet to a parked connection
    for i, c in enumerate(clients):
        assert c.request(f"again {i}") == f"again {i}"
    wait_parked(port, 21)
    LineClient(port).send("broadcast")
    for c in [*clients, later]:
        assert c.recv() == "to all"
    # pipelined input on a parked connection: all of it, in order
    clients[0].sock.sendall(b"".join(f"p{i}\n".encode() for i in range(100)))
    assert [clients[0].recv() for _ in range(100)] == [f"p{i}" for i in range(100)]


def test_parked_connection_closed_by_either_side_runs_on_close(srv, tmp_path):
    g = srv()
    port = g.ports["TEXT_PORT"]
    leaving, closing = LineClient(port), LineClient(port)
    assert leaving.request("hi") == "hi"
    assert closing.request("close-later 1.0") == "ok"
    wait_parked(port, 2)
    leaving.close()
    assert closing.recv() == "bye"
    assert closing.file.readline() == b""
    wait_until(lambda: closes(tmp_path) == 2, what="on_close of both")
    wait_until(lambda: stats(port) == {"parked": 0, "open": 1}, what="nothing left open")


def test_idle_timeout_holds_while_parked(srv):
    g = srv()
    silent = LineClient(g.ports["IDLE_PORT"], timeout=10)  # parked from the start
    c = LineClient(g.ports["IDLE_PORT"], timeout=10)
    assert c.request("hi") == "hi"
    t0 = time.monotonic()
    wait_parked(g.ports["TEXT_PORT"], 2)
    for client in (c, silent):
        assert client.file.readline() == b""
    assert 1.3 < time.monotonic() - t0 < 3.0  # idle_timeout=1.5, honoured within a sweep
    assert g.log().count("closed after idle_timeout") == 2


def test_worker_connections_counts_parked_connections(srv):
    g = srv(args=["--worker-connections", "3"])
    port = g.ports["TEXT_PORT"]
    held = [LineClient(port) for _ in range(2)]
    for c in held:
        assert c.request("hi") == "hi"
    wait_parked(port, 2)  # the stats connection is the third
    held.append(LineClient(port))
    assert held[-1].request("third") == "third"
    waiting = socket.create_connection(("127.0.0.1", port), timeout=0.8)
    waiting.sendall(b"fourth\n")
    with pytest.raises(socket.timeout):
        waiting.recv(100)  # accepted by the kernel, not by the worker: it is full
    held.pop().close()
    waiting.settimeout(5)
    assert waiting.recv(100) == b"fourth\n"
    waiting.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGQUIT])
def test_stopping_worker_closes_parked_connections(srv, tmp_path, sig):
    g = srv(workers=1, args=["--graceful-timeout", "20"])
    port = g.ports["TEXT_PORT"]
    clients = [LineClient(port, timeout=10) for _ in range(10)]
    for c in clients:
        assert c.request("hi") == "hi"
    wait_parked(port, 10)
    t0 = time.monotonic()
    g.signal(sig)
    for c in clients:
        assert c.file.readline() == b""
    g.proc.wait(timeout=10)
    assert time.monotonic() - t0 < 3
    assert closes(tmp_path) == 10  # on_close for every parked one


def test_websocket_connections_park(srv):
    g = srv()
    with connect(f"ws://127.0.0.1:{g.ports['WS_PORT']}") as ws, \
            connect(f"ws://127.0.0.1:{g.ports['HTTP_PORT']}/upgraded") as upgraded:
        for conn in (ws, upgraded):
            conn.send("one")
            assert conn.recv(timeout=5) == "one"
        wait_parked(g.ports["TEXT_PORT"], 2)
        for conn in (ws, upgraded):
            conn.send("two")
            assert conn.recv(timeout=5) == "two"
            conn.ping().wait(5)
        wait_parked(g.ports["TEXT_PORT"], 2)
    wait_until(lambda: stats(g.ports["TEXT_PORT"]) == {"parked": 0, "open": 1},
               what="both WebSocket connections closed")


def test_tls_connections_park(srv, tls_certs):
    cert, key, client_context = tls_certs
    g = srv(args=["--certfile", str(cert), "--keyfile", str(key)], CERT="1")
    raw = socket.create_connection(("127.0.0.1", g.ports["TLS_PORT"]), timeout=5)
    tls = client_context.wrap_socket(raw, server_hostname="127.0.0.1")
    tls.sendall(b"hello\n")
    assert tls.recv(100) == b"hello\n"
    wait_parked(g.ports["TEXT_PORT"], 1)
    tls.sendall(b"x" * 100_000 + b"\nafter\n")  # several TLS records at once
    data = b""
    while not data.endswith(b"after\n"):
        chunk = tls.recv(1 << 20)
        assert chunk
        data += chunk
    assert data == b"x" * 100_000 + b"\nafter\n"
    wait_parked(g.ports["TEXT_PORT"], 1)
    tls.close()


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_stop_and_reload_with_parked_connections_log_cleanly(srv, tmp_path, sig):
    """Shutting a parked connection's socket must not trip gevent's wait cancellation
    (it used to log an AttributeError traceback per parked connection)."""
    g = srv(workers=1)
    port = g.ports["TEXT_PORT"]
    [old_worker] = g.worker_pids()
    clients = [LineClient(port, timeout=10) for _ in range(3)]
    for c in clients:
        assert c.request("hi") == "hi"
    wait_parked(port, 3)
    g.signal(sig)
    for c in clients:
        assert c.file.readline() == b""  # closed by the drain: EOF, not a reset
    wait_until(lambda: f"Worker exiting (pid: {old_worker})" in g.log(), timeout=10,
               what="the old worker exited")
    lines = [line for f in tmp_path.glob("events.*") for line in f.read_text().splitlines()]
    closed = [line for line in lines if line.startswith("close ")]
    assert len(closed) == 3 and len(set(closed)) == 3  # on_close once for each
    log = g.log()
    assert "Traceback" not in log and "AttributeError" not in log, log
