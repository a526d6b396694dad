"""Load clients for reload/crash tests: many client kinds, bounded in time and count.

Each client kind is a function ``run(port, stop, stats)`` running in its own
thread until ``stop`` is set. New kinds (HTTP keep-alive, WebSocket, UDP)
plug into :func:`run_load` the same way, each with its own port::

    with run_load([(text_echo, text_port, 6), (http_keepalive, http_port, 4)]) as stats:
        ...  # HUP, TTIN, kill -9 ...
    assert stats.errors == []

Counting rules for text echo (the text protocol has no "going away" message):
a server that drains closes an *idle* connection, so a request sent at that
moment may get EOF or a reset without a reply. It was never processed, so the
client reconnects and resends it; that is a ``reconnects``, not an error.
Errors are: a refused or timed-out connection, a wrong reply, a reply missing
after a reconnect and resend.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

MAX_OPS_PER_CLIENT = 200_000


@dataclass
class Stats:
    """Counts per client kind, shared by its threads."""

    ok: Counter[str] = field(default_factory=Counter)
    reconnects: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add_ok(self, kind: str) -> None:
        with self.lock:
            self.ok[kind] += 1

    def add_reconnect(self, kind: str) -> None:
        with self.lock:
            self.reconnects[kind] += 1

    def add_error(self, kind: str, what: str) -> None:
        with self.lock:
            self.errors.append(f"{kind}: {what}")

    def summary(self) -> dict[str, object]:
        with self.lock:
            return {"ok": dict(self.ok), "reconnects": dict(self.reconnects),
                    "errors": len(self.errors), "first_errors": self.errors[:5]}


class _LineConn:
    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.file = self.sock.makefile("rb")

    def request(self, line: bytes) -> bytes | None:
        """The reply line, or None if the server closed the connection first."""
        try:
            self.sock.sendall(line + b"\n")
            reply = self.file.readline()
        except (ConnectionResetError, BrokenPipeError):
            return None
        return reply.rstrip(b"\n") if reply else None

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def text_echo(port: int, stop: threading.Event, stats: Stats, pause: float = 0.002) -> None:
    """One persistent text connection sending numbered lines, reconnecting on server close."""
    kind = "text_echo"
    conn = None
    n = 0
    while not stop.is_set() and n < MAX_OPS_PER_CLIENT:
        n += 1
        line = f"msg-{threading.get_ident()}-{n}".encode()
        for attempt in range(2):
            try:
                if conn is None:
                    conn = _LineConn(port, timeout=10)
                reply = conn.request(line)
            except OSError as exc:
                stats.add_error(kind, f"{type(exc).__name__}: {exc}")
                conn = None
                time.sleep(0.05)
                break
            if reply is None:  # closed while idle by a draining worker
                conn.close()
                conn = None
                if attempt == 0:
                    stats.add_reconnect(kind)
                    continue
                stats.add_error(kind, "closed twice without reply")
                break
            if reply != line:
                stats.add_error(kind, f"wrong reply {reply!r} to {line!r}")
            else:
                stats.add_ok(kind)
            break
        time.sleep(pause)
    if conn is not None:
        conn.close()


def text_connect_loop(port: int, stop: threading.Event, stats: Stats) -> None:
    """A loop of new connections: connect, one line, reply, close."""
    kind = "text_connect"
    n = 0
    while not stop.is_set() and n < MAX_OPS_PER_CLIENT:
        n += 1
        line = f"new-{threading.get_ident()}-{n}".encode()
        for attempt in range(2):
            try:
                conn = _LineConn(port, timeout=10)
            except OSError as exc:
                stats.add_error(kind, f"connect: {type(exc).__name__}: {exc}")
                time.sleep(0.05)
                break
            reply = conn.request(line)
            conn.close()
            if reply is None and attempt == 0:
                stats.add_reconnect(kind)
                continue
            if reply != line:
                stats.add_error(kind, f"reply {reply!r} to {line!r}")
            else:
                stats.add_ok(kind)
            break


def udp_paced(port: int, stop: threading.Event, stats: Stats, pause: float = 0.002) -> None:
    """A paced stream of numbered datagrams to a ``text+udp://`` echo; every one must come back.

    Each datagram not echoed within 2 s of the end is an error (lost).
    """
    kind = "udp"
    sent: set[bytes] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)

        def collect() -> None:
            while True:
                try:
                    data = sock.recv(2048)
                except (BlockingIOError, ConnectionRefusedError):
                    return
                for line in data.splitlines():
                    if line in sent:
                        sent.discard(line)
                        stats.add_ok(kind)

        n = 0
        while not stop.is_set() and n < MAX_OPS_PER_CLIENT:
            n += 1
            line = f"u-{threading.get_ident()}-{n}".encode()
            sent.add(line)
            try:
                sock.sendto(line + b"\n", ("127.0.0.1", port))
            except OSError as exc:
                stats.add_error(kind, f"send: {exc}")
            collect()
            time.sleep(pause)
        deadline = time.monotonic() + 2
        while sent and time.monotonic() < deadline:
            collect()
            time.sleep(0.01)
    if sent:
        stats.add_error(kind, f"{len(sent)} of {n} datagrams lost")


def http_keepalive(port: int, stop: threading.Event, stats: Stats,
                   pause: float = 0.002) -> None:
    """One keep-alive HTTP client sending numbered GETs (the server echoes the path).

    No request is ever retried: a connection closed under a request (no
    response byte) is a failed request, as it would be for a POST. A draining
    server must answer with ``Connection: close`` instead; the client then
    opens a new connection for the next request (counted as ``http_reconnect``).
    Any failure, a status other than 200 or a wrong body is an error.
    """
    kind = "http"
    conn = None
    n = 0
    while not stop.is_set() and n < MAX_OPS_PER_CLIENT:
        n += 1
        path = f"/h-{threading.get_ident()}-{n}"
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", path)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            stats.add_error(kind, f"request failed: {type(exc).__name__}: {exc}")
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
            continue
        if response.status != 200 or body != path.encode():
            stats.add_error(kind, f"{response.status} {body[:60]!r} for {path}")
        else:
            stats.add_ok(kind)
        if response.will_close:
            stats.add_reconnect(kind)
            conn.close()
            conn = None
        time.sleep(pause)
    if conn is not None:
        conn.close()


def websocket_echo(port: int, stop: threading.Event, stats: Stats,
                   pause: float = 0.002) -> None:
    """One WebSocket client sending numbered text messages, reconnecting after a close.

    A draining server must close with 1001 ("going away"): the client counts
    ``going_away``, reconnects and resends a message that got no echo. A
    connection that ends without a close frame, another close code, or a
    wrong echo is an error.
    """
    import websocket  # websocket-client, a test dependency

    kind = "websocket"
    ws = None
    n = 0
    while not stop.is_set() and n < MAX_OPS_PER_CLIENT:
        n += 1
        message = f"w-{threading.get_ident()}-{n}"
        for attempt in range(2):
            try:
                if ws is None:
                    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=10)
                ws.send(message)
                opcode, data = ws.recv_data(control_frame=True)
                while opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                    opcode, data = ws.recv_data(control_frame=True)
            except (OSError, websocket.WebSocketException) as exc:
                stats.add_error(kind, f"ended without a close frame: {type(exc).__name__}: {exc}")
                ws = None
                time.sleep(0.05)
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(data[:2], "big") if len(data) >= 2 else None
                ws.close()
                ws = None
                if code != 1001:
                    stats.add_error(kind, f"closed with {code}, not 1001")
                    break
                stats.add_ok("websocket_going_away")
                if attempt == 0:
                    stats.add_reconnect(kind)
                    continue
                stats.add_error(kind, "1001 twice in a row")
                break
            if data.decode() != message:
                stats.add_error(kind, f"wrong echo {data[:60]!r} for {message}")
            else:
                stats.add_ok(kind)
            break
        time.sleep(pause)
    if ws is not None:
        ws.close()


ClientFn = Callable[[int, threading.Event, Stats], None]


@contextmanager
def run_load(clients: list[tuple[ClientFn, int, int]],
             max_seconds: float = 60.0) -> Iterator[Stats]:
    """Run ``(client function, port, threads)`` copies of each client during the block.

    Threads stop when the block exits (or after ``max_seconds``, whichever
    comes first); the block gets the shared :class:`Stats`.
    """
    stats = Stats()
    stop = threading.Event()
    timer = threading.Timer(max_seconds, stop.set)
    timer.start()
    threads = [threading.Thread(target=fn, args=(port, stop, stats), daemon=True)
               for fn, port, count in clients for _ in range(count)]
    for t in threads:
        t.start()
    try:
        yield stats
    finally:
        stop.set()
        timer.cancel()
        for t in threads:
            t.join(timeout=15)
