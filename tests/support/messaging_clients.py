"""Clients of tests/apps/messaging_app.py: text:// lines that know their worker and client id."""

from __future__ import annotations

import json
import socket
import time


class Client:
    """A text:// client of the messaging app that keeps pushed lines apart from replies.

    It reads the socket itself (no file object), so a read may time out and
    the next one still sees everything that arrived.
    """

    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buffer = b""
        self.pushed: list[str] = []
        self.pid = int(self.request("pid"))
        self.cid = self.request("id")

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode() + b"\n")

    def recv(self, timeout: float | None = None) -> str:
        """The next line (raises TimeoutError when none comes within ``timeout``)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError(f"connection closed (have {self.buffer!r})")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def request(self, line: str) -> str:
        self.send(line)
        return self.recv()

    def ask(self, line: str, prefix: str = "ok") -> str:
        """Send a command; return its reply, keeping pushed messages that arrive first."""
        self.send(line)
        while True:
            got = self.recv()
            if got.startswith((prefix, "error")):
                return got
            self.pushed.append(got)

    def query(self, line: str):
        reply = self.ask(f"q {line}", prefix="q ")
        assert reply.startswith("q "), reply
        return json.loads(reply[2:])

    def describe(self) -> dict:
        """The worker's messaging backend state (``Backend.describe()``)."""
        reply = self.ask("describe", prefix="d ")
        assert reply.startswith("d "), reply
        return json.loads(reply[2:])

    def next_push(self, timeout: float | None = None) -> str:
        return self.pushed.pop(0) if self.pushed else self.recv(timeout)

    def pushes_within(self, wait: float) -> list[str]:
        """Every line pushed within ``wait`` seconds."""
        lines, self.pushed = self.pushed, []
        deadline = time.monotonic() + wait
        while True:
            try:
                lines.append(self.recv(max(0.0, deadline - time.monotonic())))
            except TimeoutError:
                return lines

    def nothing_pushed(self, wait: float = 0.3) -> bool:
        got = self.pushes_within(wait)
        if got:
            raise AssertionError(f"unexpected push: {got!r}")
        return True

    def close(self) -> None:
        self.sock.close()


def spread(port: int, count: int, workers: int) -> list[Client]:
    """``count`` clients, until they sit on ``workers`` different workers."""
    clients = [Client(port) for _ in range(count)]
    for _ in range(50):
        if len({c.pid for c in clients}) >= workers:
            return clients
        clients.append(Client(port))
    raise AssertionError(f"clients sit on {len({c.pid for c in clients})} workers only")


def one_per_worker(clients: list[Client]) -> list[Client]:
    by_pid: dict[int, Client] = {}
    for c in clients:
        by_pid.setdefault(c.pid, c)
    return list(by_pid.values())


def assert_sends_reach(caller: Client, clients: list[Client]) -> None:
    """From ``caller``: send_to_uid and send_to_client reach each client once, and a
    send_to_group to ``g1`` (the odd-numbered clients) reaches every member but the caller.

    The clients are bound to uids ``u0``, ``u1``... and the odd ones joined ``g1``.
    """
    for j, target in enumerate(clients):
        assert caller.ask(f"to_uid u{j} hello u{j}") == "ok True"
        assert target.next_push() == f"hello u{j}"
        assert caller.ask(f"to_client {target.cid} direct") == "ok True"
        assert target.next_push() == "direct"
    assert caller.ask(f"to_group g1 room {caller.cid}") == "ok True"
    for i, c in enumerate(clients):
        if c is not caller and i % 2 == 1:
            assert c.next_push() == f"room {caller.cid}"
