"""The shipped examples start and answer (real gunicorn, the example's own addresses rewritten
to free ports)."""

from __future__ import annotations

import hashlib
import re
import socket
import struct
import threading
import time

import pytest

from conftest import ROOT, Gunicorn, LineClient, free_port, wait_until

EXAMPLES = ROOT / "examples"


def load(name: str, **ports: int) -> str:
    source = (EXAMPLES / name).read_text()
    for old, new in ports.items():
        source = re.sub(rf"127\.0\.0\.1:{old[1:]}\b", f"127.0.0.1:{new}", source)
    return source


def test_frame_example(gunicorn):
    port = free_port()
    gunicorn(load("frame_echo.py", p2346=port), workers=1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">I", 9) + b"hello")
        assert s.recv(100) == struct.pack(">I", 9) + b"hello"


def test_udp_example(gunicorn):
    port = free_port(socket.SOCK_DGRAM)
    gunicorn(load("udp_echo.py", p2347=port), workers=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(b"ping", ("127.0.0.1", port))
        assert s.recvfrom(100)[0] == b"ping"


def test_chat_example(gunicorn):
    text, frame = free_port(), free_port()
    gunicorn(load("chat.py", p2348=text, p2349=frame), workers=2)
    alice = LineClient(text)
    bob = LineClient(text)

    def next_said(client: LineClient) -> str:
        """The next line that is not a join notice (they race with the test on 2 workers)."""
        line = client.recv()
        while line.endswith(" joined"):
            line = client.recv()
        return line

    bob.send("/nick bob")
    assert next_said(bob) == "* you are bob"
    assert next_said(alice).endswith(" is now bob")
    bob.send("hi all")
    assert next_said(alice) == "<bob> hi all"  # wherever alice's worker is
    assert next_said(bob) == "<bob> hi all"
    # Names are unique across workers, and /who, /msg reach every worker.
    def until(client: LineClient, start: str) -> str:
        """The next line that starts with ``start`` (notices of others come in between)."""
        line = client.recv()
        while not line.startswith(start):
            line = client.recv()
        return line

    people = [LineClient(text) for _ in range(6)]
    for i, p in enumerate(people):
        p.send(f"/nick p{i}")
        until(p, f"* you are p{i}")
    alice.send("/who")
    names = until(alice, "* here: ")[len("* here: "):].split(", ")
    assert len(names) == len(set(names)) == 8 and {"bob", "p0", "p5"} <= set(names)
    alice.send("/msg p5 psst")
    assert until(people[5], "[").endswith("whispers] psst")
    bob.send("/nick p0")
    line = until(bob, "* p0 is")
    assert line == "* p0 is taken"


#: The upstream of the proxy tests: a tcp:// echo that applies backpressure itself.
ECHO_UPSTREAM = """
from geworker import Server

server = Server("tcp://127.0.0.1:{port}", name="echo")


@server.on_message
def echo(conn, data):
    conn.send(data)


@server.on_buffer_full
def full(conn):
    conn.pause_recv()


@server.on_buffer_drain
def drain(conn):
    conn.resume_recv()
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """examples/proxy.py under gunicorn, in front of a geworker echo server; its port and pid."""
    upstream_port, port = free_port(), free_port()
    tmp = tmp_path_factory.mktemp("proxy")
    (tmp / "upstream").mkdir()
    (tmp / "proxy").mkdir()
    upstream = Gunicorn(tmp / "upstream", ECHO_UPSTREAM.format(port=upstream_port), [], {}, 1)
    front = Gunicorn(tmp / "proxy", load("proxy.py", p8000=port, p2346=upstream_port), [], {}, 1)
    try:
        upstream.wait_ready()
        front.wait_ready()
        [worker] = front.worker_pids()
        yield port, worker
    finally:
        front.stop()
        upstream.stop()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Sender(threading.Thread):
    """Sends ``blocks`` numbered 64 KiB blocks on ``sock``, counting the bytes handed over."""

    def __init__(self, sock: socket.socket, blocks: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.blocks = sock, blocks
        self.sent = 0
        self.digest = hashlib.sha256()
        self.error: Exception | None = None
        self.start()

    @staticmethod
    def block(i: int) -> bytes:
        return i.to_bytes(8, "big") * 8192

    def run(self) -> None:
        try:
            for i in range(self.blocks):
                data = self.block(i)
                self.digest.update(data)
                self.sock.sendall(data)
                self.sent += len(data)
        except OSError as exc:
            self.error = exc


def receive(sock: socket.socket, size: int) -> bytes:
    digest = hashlib.sha256()
    got = 0
    while got < size:
        chunk = sock.recv(1 << 20)
        assert chunk, f"EOF after {got} of {size} bytes"
        digest.update(chunk)
        got += len(chunk)
    return digest.digest()


def test_proxy_example_carries_10_mb_intact(proxy):
    port, _ = proxy
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.perf_counter()
        sender = Sender(sock, 160)  # 160 x 64 KiB = 10 MiB
        digest = receive(sock, 160 * 65536)
        elapsed = time.perf_counter() - started
        sender.join(10)
        assert sender.error is None and digest == sender.digest.digest()
    print(f"\n10 MiB through examples/proxy.py and back in {elapsed:.2f}s")


def test_proxy_example_pauses_its_upstream_for_a_reader_that_stops(proxy):
    port, worker = proxy
    with socket.create_connection(("127.0.0.1", port), timeout=5) as warm:  # imports done
        warm.sendall(b"warm up")
        assert warm.recv(100) == b"warm up"
    baseline = rss(worker)
    blocks = 2048  # 128 MiB: far more than the kernel buffers on the way can hold
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sender = Sender(sock, blocks)  # ... and nothing is read for now

        def stalled() -> bool:
            before = sender.sent
            time.sleep(1.0)
            return sender.sent == before

        wait_until(stalled, 30, what="the sender to be held back")
        held = rss(worker) - baseline
        assert sender.sent < blocks * 65536, "nothing held the sender back"
        assert held < 24 * 2**20, f"the proxy grew by {held / 2**20:.1f} MiB"
        stalled_at = sender.sent
        digest = receive(sock, blocks * 65536)  # reading again: everything, in order
        sender.join(30)
        assert sender.error is None and digest == sender.digest.digest()
    print(f"\nreader stopped: sender held after {stalled_at / 2**20:.1f} MiB; proxy RSS "
          f"{baseline / 2**20:.1f} MiB -> +{held / 2**20:.1f} MiB")
