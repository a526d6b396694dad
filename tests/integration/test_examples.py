"""The shipped examples start and answer (real gunicorn, the example's own addresses rewritten
to free ports)."""

from __future__ import annotations

import re
import socket
import struct

from conftest import ROOT, LineClient, free_port

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
