"""Echo over every built-in transport and framing, with two workers."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time

from conftest import LineClient, free_port

ECHO_APP = """
import os
from geworker import Server

server = Server(name="echo")
for url in os.environ["URLS"].split():
    server.listen(url)

@server.on_message
def echo(conn, message):
    conn.send(message)
"""


def test_text_echo_two_workers(gunicorn):
    port = free_port()
    g = gunicorn(ECHO_APP, env={"URLS": f"text://127.0.0.1:{port}"})
    assert len(g.worker_pids()) == 2
    clients = [LineClient(port) for _ in range(10)]
    for i, c in enumerate(clients):
        assert c.request(f"hello {i}") == f"hello {i}"
    c = clients[0]
    c.sock.sendall(b"one\r\ntwo\nthr")
    c.sock.sendall(b"ee\n")
    assert [c.recv(), c.recv(), c.recv()] == ["one", "two", "three"]
    for c in clients:
        c.close()


def recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "connection closed early"
        data += chunk
    return data


def test_frame_echo(gunicorn):
    port = free_port()
    gunicorn(ECHO_APP, env={"URLS": f"frame://127.0.0.1:{port}"})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        payloads = [b"", b"x", b"\x00\xff" * 5000, bytes(range(256))]
        wire = b"".join(struct.pack(">I", len(p) + 4) + p for p in payloads)
        for i in range(0, len(wire), 7):  # split the stream in small writes
            s.sendall(wire[i:i + 7])
        for p in payloads:
            (total,) = struct.unpack(">I", recv_exact(s, 4))
            assert recv_exact(s, total - 4) == p


def test_raw_tcp_echo(gunicorn):
    port = free_port()
    gunicorn(ECHO_APP, env={"URLS": f"tcp://127.0.0.1:{port}"})
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x00raw bytes\xff")
        assert recv_exact(s, 11) == b"\x00raw bytes\xff"


def test_udp_echo_and_text_over_udp(gunicorn):
    raw, text = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    gunicorn(ECHO_APP, env={"URLS": f"udp://127.0.0.1:{raw} text+udp://127.0.0.1:{text}"})
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        for n in (1, 100, 9000, 65507):  # past gevent's default 8 KiB read
            s.sendto(b"d" * n, ("127.0.0.1", raw))
            data, _ = s.recvfrom(70000)
            assert len(data) == n
        s.sendto(b"a\nb\n", ("127.0.0.1", text))
        assert {s.recvfrom(100)[0], s.recvfrom(100)[0]} == {b"a\n", b"b\n"}


def test_unix_socket(gunicorn, tmp_path):
    path = tmp_path / "echo.sock"
    gunicorn(ECHO_APP, env={"URLS": f"text+unix://{path}"})
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(path))
        s.sendall(b"over unix\n")
        assert recv_exact(s, 10) == b"over unix\n"


TWO_LISTENERS = """
import os
from geworker import Server

server = Server(f"text://127.0.0.1:{os.environ['TEXT_PORT']}", name="two")
server.listen(f"frame://127.0.0.1:{os.environ['FRAME_PORT']}")

@server.on_message
def echo(conn, message):
    conn.send(f"{conn.listener.protocol.__name__}:{message!r}")
"""


def test_two_listeners_different_protocols(gunicorn):
    tp, fp = free_port(), free_port()
    gunicorn(TWO_LISTENERS, env={"TEXT_PORT": str(tp), "FRAME_PORT": str(fp)})
    c = LineClient(tp)
    assert c.request("hi") == "TextProtocol:'hi'"
    c.close()
    with socket.create_connection(("127.0.0.1", fp), timeout=5) as s:
        s.sendall(struct.pack(">I", 6) + b"hi")
        (total,) = struct.unpack(">I", recv_exact(s, 4))
        assert recv_exact(s, total - 4) == b"FrameProtocol:b'hi'"


def test_a_flooding_client_does_not_starve_the_others(gunicorn):
    """A client whose data never runs out (so its reads never wait) must let others in."""
    port = free_port()
    gunicorn(ECHO_APP, workers=1, env={"URLS": f"text://127.0.0.1:{port}"})
    flood = socket.create_connection(("127.0.0.1", port), timeout=5)
    stop = threading.Event()
    chunk = b"flood " * 10_000 + b"\n"  # one 60 KB line per write, echoed back

    def push() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                flood.sendall(chunk)

    def drain() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set() and flood.recv(1 << 20):
                pass

    threads = [threading.Thread(target=push), threading.Thread(target=drain)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)  # the flood is on
        probe = LineClient(port, timeout=5)
        worst = 0.0
        for i in range(20):
            t0 = time.monotonic()
            assert probe.request(f"ping {i}") == f"ping {i}"
            worst = max(worst, time.monotonic() - t0)
        assert worst < 1.0, f"a probe waited {worst:.2f}s behind the flood"
    finally:
        stop.set()
        flood.close()
        for t in threads:
            t.join(timeout=5)
