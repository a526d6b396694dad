"""geworker.connect against real servers: geworker under gunicorn, the ``websockets`` library,
an HTTP CONNECT proxy; clients in this process (a plain script: never monkey-patched), in a
subprocess that watches its own file descriptors, and inside a worker."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import gevent
import pytest

import geworker
from geworker import (
    ConnectionClosed,
    DNSError,
    HandshakeError,
    ProxyError,
    TLSError,
    register_protocol,
)

from conftest import ROOT, Gunicorn, LineClient, free_port, wait_until
from support.connect_proxy import ConnectProxy

SUPPORT = ROOT / "tests" / "support"

NETSTRING = '''
from geworker import Protocol, RemoteProtocolError


class NetString(Protocol):
    """``<length>:<payload>,``: a custom protocol, registered on both sides."""

    def __init__(self, max_package_size=10 * 2**20):
        super().__init__(max_package_size)
        self.buffer = b""

    def receive_data(self, data):
        self.buffer += data
        messages = []
        while b":" in self.buffer:
            size, _, rest = self.buffer.partition(b":")
            if not size.isdigit():
                raise RemoteProtocolError("bad netstring length")
            if len(rest) < int(size) + 1:
                break
            messages.append(rest[: int(size)])
            self.buffer = rest[int(size) + 1:]
        return messages

    def encode(self, message):
        return b"%d:%s," % (len(message), message)

    @property
    def has_partial_message(self):
        return bool(self.buffer)
'''

SERVER_APP = NETSTRING + '''
import os

from geworker import Server, register_protocol

register_protocol("netstring", NetString)
env = os.environ
server = Server(f"websocket://127.0.0.1:{env['WS']}", name="clients")
server.listen(f"wss://127.0.0.1:{env['WSS']}")
server.listen(f"ws://127.0.0.1:{env['KA']}", websocket_ping_interval=0.2,
              websocket_ping_timeout=0.4)
server.listen(f"text://127.0.0.1:{env['TEXT']}")
server.listen(f"text+tls://127.0.0.1:{env['TEXTTLS']}")
server.listen(f"frame://127.0.0.1:{env['FRAME']}")
server.listen(f"tcp://127.0.0.1:{env['TCP']}")
server.listen(f"netstring://127.0.0.1:{env['NET']}")
server.listen(f"text+unix://{env['UNIX']}")
server.listen(f"udp://127.0.0.1:{env['UDP']}")
server.listen(f"text+udp://127.0.0.1:{env['TUDP']}")


@server.on_websocket_connect
def handshake(conn, request):
    conn.context["info"] = f"{request.target} {request.headers.get('x-test', '-')}"
    request.accept("chat" if "chat" in request.subprotocols else None)


@server.on_message
def reply(conn, message):
    if message == "info":
        conn.send(f"{conn.context['info']} {conn.subprotocol or '-'}")
    elif isinstance(message, str) and message.startswith("close ") and hasattr(conn, "ping"):
        _, code, reason = message.split(" ", 2)
        conn.close(code=int(code), reason=reason)
    else:
        conn.send(message)


@server.on_close
def closed(conn):
    if getattr(conn, "close_code", None) is not None:
        with open(env["CLOSE_LOG"], "a") as log:
            log.write(f"{conn.close_code} {conn.close_reason}\\n")
'''

exec(compile(NETSTRING, "netstring", "exec"))  # the same class, on this side
register_protocol("netstring", NetString)  # type: ignore[name-defined]  # noqa: F821


class Servers:
    """One gunicorn serving every listener the tests connect to (ports by name)."""

    def __init__(self, tmp: Path, certs) -> None:
        names = ("WS", "WSS", "KA", "TEXT", "TEXTTLS", "FRAME", "TCP", "NET")
        self.ports = {name: free_port() for name in names}
        self.ports["UDP"] = free_port(socket.SOCK_DGRAM)
        self.ports["TUDP"] = free_port(socket.SOCK_DGRAM)
        self.unix = str(tmp / "text.sock")
        self.close_log = tmp / "closes.log"
        env = {name: str(port) for name, port in self.ports.items()}
        env.update(UNIX=self.unix, CLOSE_LOG=str(self.close_log))
        cert, key, _ = certs
        self.gunicorn = Gunicorn(tmp, SERVER_APP, ["--certfile", str(cert), "--keyfile", str(key)],
                                 env, workers=1)
        self.gunicorn.wait_ready()

    def url(self, scheme: str, name: str, path: str = "") -> str:
        return f"{scheme}://127.0.0.1:{self.ports[name]}{path}"

    def closes(self) -> list[str]:
        return self.close_log.read_text().splitlines() if self.close_log.exists() else []


@pytest.fixture(scope="module")
def servers(tmp_path_factory, tls_certs):
    started = Servers(tmp_path_factory.mktemp("clients"), tls_certs)
    yield started
    started.gunicorn.stop()


class LibServer:
    """The ``websockets`` library's server in a subprocess (tests/support/websockets_server.py)."""

    def __init__(self, tmp: Path, *tls: Path) -> None:
        self.log = tmp / f"websockets{len(tls)}.log"
        self.proc = subprocess.Popen(
            [sys.executable, str(SUPPORT / "websockets_server.py"), str(self.log),
             *map(str, tls)], stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = self.proc.stdout.readline()
        assert line.startswith("PORT "), line
        self.port = int(line.split()[1])

    def closes(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def lib_server(tmp_path_factory):
    server = LibServer(tmp_path_factory.mktemp("wslib"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lib_tls_server(tmp_path_factory, tls_certs):
    cert, key, _ = tls_certs
    server = LibServer(tmp_path_factory.mktemp("wslibtls"), cert, key)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def close_clients():
    yield
    from geworker.transport.client import open_clients

    for conn in open_clients():
        conn.close()


def bytes_read_grows(conn, before: int, timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while conn.bytes_read <= before and time.monotonic() < deadline:
        gevent.sleep(0.01)
    return conn.bytes_read > before


# -- WebSocket ---------------------------------------------------------------------------


def test_websocket_client_against_geworker(servers):
    url = servers.url("ws", "WS", "/chat?room=1")
    with geworker.connect(url, subprotocols=["chat"], headers={"X-Test": "yes"}) as ws:
        assert ws.response.subprotocol == "chat" == ws.subprotocol
        assert ws.response.extensions == ["permessage-deflate"]
        ws.send("info")
        assert ws.receive(timeout=5) == "/chat?room=1 yes chat"
        ws.send("héllo")
        assert ws.receive(timeout=5) == "héllo"
        ws.send(b"\x00\xff")
        assert ws.receive(timeout=5) == b"\x00\xff"
        big = os.urandom(1024 * 1024)  # the servers' limit, exactly
        ws.send(big)
        assert ws.receive(timeout=10) == big
        text = "compressible " * 80_000
        written = ws.bytes_written
        ws.send(text)
        assert ws.receive(timeout=10) == text
        assert ws.bytes_written - written < len(text) // 20  # permessage-deflate at work
        before = ws.bytes_read
        assert ws.ping(b"ping from the client")
        assert bytes_read_grows(ws, before)  # the pong
        ws.close(code=4000, reason="client done")
    assert ws.state is geworker.ConnectionState.CLOSED
    wait_until(lambda: "4000 client done" in servers.closes(), 5, what="the server's on_close")

    # the server closes, with its code
    ws = geworker.connect(servers.url("ws", "WS", "/"), blocking=True)
    ws.send("close 4001 server done")
    with pytest.raises(ConnectionClosed) as closed:
        ws.receive(timeout=5)
    assert closed.value.close_code == 4001 == ws.close_code
    assert ws.close_reason == "server done"

    # a message past the server's limit: it closes with 1009
    ws = geworker.connect(servers.url("ws", "WS", "/"), blocking=True)
    ws.send(b"x" * (1024 * 1024 + 1))
    with pytest.raises(ConnectionClosed):
        ws.receive(timeout=5)
    assert ws.close_code == 1009


def test_websocket_keepalive_both_ways(servers):
    # The KA listener pings every 0.2 s and closes a peer silent for 0.4 s after a ping:
    # the client answers. And the client's own keepalive gets the server's pongs.
    quiet = geworker.connect(servers.url("ws", "KA", "/"), blocking=True)
    pinger = geworker.connect(servers.url("ws", "WS", "/"), blocking=True,
                              websocket_ping_interval=0.2, websocket_ping_timeout=0.4)
    gevent.sleep(1.5)
    for ws in (quiet, pinger):
        assert ws.state.is_open
        ws.send("still here")
        assert ws.receive(timeout=5) == "still here"
        ws.close()


def test_websocket_client_against_the_websockets_library(lib_server):
    url = f"ws://127.0.0.1:{lib_server.port}/lib?q=1"
    with geworker.connect(url, subprotocols=["other"], headers=[("X-Test", "lib")]) as ws:
        assert ws.subprotocol == "other"
        assert ws.response.extensions == ["permessage-deflate"]
        ws.send("info")
        info = ws.receive(timeout=5)
        assert info.startswith("/lib?q=1 lib other permessage-deflate"), info
        ws.send("text")
        assert ws.receive(timeout=5) == "text"
        ws.send(b"\x01\x02")
        assert ws.receive(timeout=5) == b"\x01\x02"
        big = os.urandom(1024 * 1024)
        ws.send(big)
        assert ws.receive(timeout=10) == big
        big_text = "é" * (512 * 1024)  # 1 MiB of UTF-8
        ws.send(big_text)
        assert ws.receive(timeout=10) == big_text
        ws.send("fragments")
        assert ws.receive(timeout=5) == "fragmented"
        ws.send("ping")  # the library pings us and waits for the pong
        assert ws.receive(timeout=5) == "pong received"
        before = ws.bytes_read
        ws.ping(b"and us")
        assert bytes_read_grows(ws, before)
        ws.close(code=4002, reason="bye lib")
    wait_until(lambda: "4002 bye lib" in lib_server.closes(), 5, what="the library's close")

    ws = geworker.connect(url, blocking=True, subprotocols=["chat"])  # (it insists on one)
    ws.send("close 4003 lib done")
    with pytest.raises(ConnectionClosed):
        ws.receive(timeout=5)
    assert (ws.close_code, ws.close_reason) == (4003, "lib done")


def test_wss_against_both_servers_and_verification_failures(servers, lib_tls_server, tls_certs):
    _, _, trusted = tls_certs
    urls = [servers.url("wss", "WSS", "/"), f"wss://127.0.0.1:{lib_tls_server.port}/",
            f"wss://localhost:{servers.ports['WSS']}/"]
    for url in urls:
        with geworker.connect(url, ssl_context=trusted, subprotocols=["chat"]) as ws:
            ws.send("secure")
            assert ws.receive(timeout=5) == "secure"
            big = os.urandom(300_000)
            ws.send(big)
            assert ws.receive(timeout=5) == big
    with geworker.connect(servers.url("text+tls", "TEXTTLS"), ssl_context=trusted) as text:
        text.send("secure line")
        assert text.receive(timeout=5) == "secure line"

    # The default: the system's CA store, which does not know the test CA.
    for url in urls[:2]:
        errors: list[Exception] = []
        conn = geworker.connect(url, on_error=lambda c, e, errors=errors: errors.append(e))
        with pytest.raises(TLSError) as untrusted:
            conn.wait_connected(5)
        message = str(untrusted.value)
        assert "certificate verification failed" in message
        assert "unable to get local issuer certificate" in message
        assert "system's CA store" in message and "ssl_context=" in message
        assert errors == [untrusted.value] and conn.connects == 0
    with pytest.raises(TLSError) as mismatch:
        geworker.connect(urls[0], ssl_context=trusted, server_hostname="other.example",
                         blocking=True)
    assert "not issued for 'other.example'" in str(mismatch.value)
    assert "Hostname mismatch" in str(mismatch.value)
    with pytest.raises(TLSError, match="speak TLS"):
        geworker.connect(servers.url("wss", "WS", "/"), ssl_context=trusted, blocking=True)


def test_websocket_handshake_refused_by_a_plain_server(servers):
    with pytest.raises(HandshakeError) as wrong:
        geworker.connect(servers.url("ws", "TEXT", "/"), blocking=True)
    assert wrong.value.status is None and "WebSocket server" in str(wrong.value)


# -- the other protocols ------------------------------------------------------------------


def test_stream_protocols_against_geworker(servers):
    with geworker.connect(servers.url("text", "TEXT")) as text:
        text.send("a line")
        assert text.receive(timeout=5) == "a line"
    with geworker.connect(servers.url("frame", "FRAME")) as frame:
        frame.send(b"\x00" * 100_000)
        assert frame.receive(timeout=5) == b"\x00" * 100_000
    with geworker.connect(servers.url("netstring", "NET")) as custom:
        custom.send(b"custom")
        assert custom.receive(timeout=5) == b"custom"
    with geworker.connect(f"text+unix://{servers.unix}") as unix:
        unix.send("over a unix socket")
        assert unix.receive(timeout=5) == "over a unix socket"
        assert unix.remote_address == servers.unix
    with geworker.connect(servers.url("tcp", "TCP")) as raw:
        payload = os.urandom(200_000)
        raw.send(payload)
        got = b""
        while len(got) < len(payload):
            chunk = raw.receive(timeout=5)
            assert chunk  # never an empty message
            got += chunk
        assert got == payload


def test_udp_client(servers):
    with geworker.connect(servers.url("udp", "UDP")) as udp:
        udp.send(b"ping")
        assert udp.receive(timeout=5) == b"ping"
        largest = os.urandom(65_507)  # the largest UDP payload over IPv4
        assert udp.send(largest)
        assert udp.receive(timeout=5) == largest
        assert udp.send(b"x" * 65_508) is False and udp.send_failures == 1
    assert udp.send(b"closed") is False and udp.sends_refused == 1
    with geworker.connect(servers.url("text+udp", "TUDP")) as text:
        text.send("one line")
        assert text.receive(timeout=5) == "one line"

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        with geworker.connect(f"udp://127.0.0.1:{silent.getsockname()[1]}") as udp:
            udp.send(b"anyone?")
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                udp.receive(timeout=0.3)  # request/response with a timeout
            assert 0.25 < time.monotonic() - started < 2
            assert silent.recv(100) == b"anyone?"
    errors = []
    nobody = free_port(socket.SOCK_DGRAM)
    with geworker.connect(f"udp://127.0.0.1:{nobody}", on_error=lambda c, e: errors.append(e)) \
            as udp:
        udp.send(b"hello?")
        with pytest.raises(TimeoutError):
            udp.receive(timeout=0.3)
    assert [type(e) for e in errors] == [geworker.ConnectRefused]


def test_dns_failure_is_typed():
    with pytest.raises(DNSError, match=r"cannot resolve host 'no-such-host\.invalid'"):
        geworker.connect("text://no-such-host.invalid:2345", blocking=True, connect_timeout=30)


# -- HTTP CONNECT proxies ------------------------------------------------------------------


def test_through_an_http_connect_proxy(servers, tls_certs):
    _, _, trusted = tls_certs
    proxy = ConnectProxy()
    try:
        for url, kwargs in ((servers.url("ws", "WS", "/via"), {}),
                            (servers.url("wss", "WSS", "/via"), {"ssl_context": trusted}),
                            (servers.url("tcp", "TCP"), {}),
                            (servers.url("text", "TEXT"), {})):
            with geworker.connect(url, proxy=proxy.url, **kwargs) as conn:
                conn.send(b"through the proxy" if url.startswith("tcp") else "through the proxy")
                assert conn.receive(timeout=5) in ("through the proxy", b"through the proxy")
        assert proxy.requests == [f"CONNECT 127.0.0.1:{servers.ports[name]}"
                                  for name in ("WS", "WSS", "TCP", "TEXT")]
        with pytest.raises(ProxyError) as bad_gateway:
            geworker.connect(f"text://127.0.0.1:{free_port()}", proxy=proxy.url, blocking=True)
        assert bad_gateway.value.status == 502
    finally:
        proxy.close()
    guarded = ConnectProxy(credentials="ann:s3cret")
    try:
        with pytest.raises(ProxyError) as refused:
            geworker.connect(servers.url("text", "TEXT"), proxy=guarded.url, blocking=True)
        assert refused.value.status == 407 and "user:password" in str(refused.value)
        url = f"http://ann:s3cret@127.0.0.1:{guarded.port}"
        with geworker.connect(servers.url("ws", "WS", "/"), proxy=url) as ws:
            ws.send("authorized")
            assert ws.receive(timeout=5) == "authorized"
    finally:
        guarded.close()


# -- reconnects, in a plain script ------------------------------------------------------------


class Lines:
    """The stdout of a subprocess, line by line, with a timeout."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.queue.put(line.strip())

    def expect(self, first_word: str, timeout: float = 10.0) -> list[str]:
        """The next line starting with ``first_word`` (split in words); others are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                line = self.queue.get(timeout=max(0.0, left))
            except queue.Empty:
                raise AssertionError(f"no {first_word!r} line within {timeout}s; "
                                     f"seen: {self.seen[-20:]}") from None
            self.seen.append(line)
            if line.split()[0] == first_word:
                return line.split()


def reconnect_client(url: str) -> tuple[subprocess.Popen, Lines]:
    proc = subprocess.Popen([sys.executable, str(SUPPORT / "reconnect_client.py"), url],
                            stdout=subprocess.PIPE, text=True, start_new_session=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return proc, Lines(proc)


ECHO_APP = """
from geworker import Server

server = Server("text://127.0.0.1:{port}", name="echo")


@server.on_message
def echo(conn, message):
    conn.send(message)
"""

#: Backoff(max_delay=0.4) in tests/support/reconnect_client.py, plus room for a loaded machine.
RECONNECT_BOUND = 0.4 + 0.35


def test_reconnect_after_the_upstream_restarts(gunicorn):
    port = free_port()
    app = ECHO_APP.format(port=port)
    upstream = gunicorn(app, workers=1)
    proc, lines = reconnect_client(f"text://127.0.0.1:{port}")
    try:
        assert lines.expect("connect")[1:3] == ["1", "False"]
        assert lines.expect("message")[1] == "hello_1"
        for cycle in (2, 3):
            upstream.stop()
            lines.expect("close")
            lines.expect("error")  # ConnectRefused while it is down
            upstream = gunicorn(app, workers=1, wait=False)
            ready = wait_until(lambda: _accepts(port) and time.time(), 45,
                               what="the upstream to accept again")
            _, count, again, at, _ = lines.expect("connect")
            assert (count, again) == (str(cycle), "True")  # on_connect ran again
            assert float(at) - ready <= RECONNECT_BOUND, f"reconnected {float(at) - ready:.3f}s " \
                                                         "after the upstream came back"
            assert lines.expect("message")[1] == f"hello_{cycle}"
            upstream.wait_ready()
    finally:
        _end(proc)


def test_twenty_reconnect_cycles_leak_no_file_descriptor():
    # A light upstream (tests/support/line_echo.py), killed and started again 20 times
    # on one port; the client, a plain script, prints its descriptors at each event.
    port = free_port()
    proc, lines = reconnect_client(f"text://127.0.0.1:{port}")
    connect_fds, close_fds, delays = [], [], []
    upstream = None
    try:
        for cycle in range(1, 21):
            lines.expect("error")  # (a refused attempt in each cycle, so those count too)
            upstream = subprocess.Popen([sys.executable, str(SUPPORT / "line_echo.py"),
                                         str(port)], stdout=subprocess.PIPE, text=True)
            ready = float(upstream.stdout.readline().split()[1])
            _, count, _, at, fds = lines.expect("connect")
            assert int(count) == cycle
            delays.append(float(at) - ready)
            connect_fds.append(int(fds))
            assert lines.expect("message")[1] == f"hello_{cycle}"
            upstream.terminate()
            upstream.wait(5)
            upstream.stdout.close()
            close_fds.append(int(lines.expect("close")[-1]))
    finally:
        _end(proc)
        if upstream is not None and upstream.poll() is None:
            upstream.kill()
            upstream.wait(5)
    assert connect_fds[-1] == connect_fds[0], connect_fds
    assert close_fds[-1] == close_fds[0], close_fds
    assert max(delays) <= RECONNECT_BOUND, delays
    print(f"\nreconnect after restart: median {sorted(delays)[10]:.3f}s max {max(delays):.3f}s; "
          f"fds at connect {connect_fds[0]} -> {connect_fds[-1]}, "
          f"at close {close_fds[0]} -> {close_fds[-1]}")


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        return True
    return False


def _end(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(5)
    proc.stdout.close()


# -- inside a worker -----------------------------------------------------------------------------


WORKER_APP = """
import os

import geworker
from geworker import Server, timers

server = Server("text://127.0.0.1:{port}", name="front")
UPSTREAM = "text://127.0.0.1:{upstream}"
replies = []


@server.on_worker_start
def start(worker):
    # the callback style, from on_worker_start and a timer: one connection, kept open
    upstream = geworker.connect(UPSTREAM, reconnect=True,
                                on_message=lambda conn, message: replies.append(message))
    timers.add(0.2, lambda: upstream.send("tick"), repeat=False)


@server.on_message
def relay(conn, message):
    if message == "ask":  # the blocking style, inside a callback: only this greenlet waits
        with geworker.connect(UPSTREAM) as upstream:
            upstream.send("question")
            conn.send("answer: " + upstream.receive(timeout=5))
    elif message == "replies":
        conn.send(",".join(replies))
"""


LOGGING_ECHO_APP = ECHO_APP + """

@server.on_connect
def opened(conn):
    with open("{log}", "a") as log:
        log.write("open\\n")


@server.on_close
def closed(conn):
    with open("{log}", "a") as log:
        log.write("close\\n")
"""


def test_clients_inside_a_worker(gunicorn, tmp_path):
    up_port, port = free_port(), free_port()
    upstream_log = tmp_path / "upstream.log"
    gunicorn(LOGGING_ECHO_APP.format(port=up_port, log=upstream_log), workers=1)
    (tmp_path / "front").mkdir()  # (the fixture's gunicorn has its app.py in tmp_path)
    front = Gunicorn(tmp_path / "front", WORKER_APP.format(port=port, upstream=up_port), [], {},
                     workers=1)
    try:
        front.wait_ready()
        client = LineClient(port)
        assert client.request("ask") == "answer: question"
        wait_until(lambda: client.request("replies") == "tick", 5, what="the timer's reply")
        assert client.request("ask") == "answer: question"  # another, opened and closed
        client.close()
        assert upstream_log.read_text().split().count("open") == 3
    finally:
        front.stop()
    # The worker stopped: its reconnecting client ended with it (drain_clients: unit tests).
    wait_until(lambda: upstream_log.read_text().split().count("close") == 3, 5,
               what="the worker's clients to close")
    time.sleep(1.0)
    assert upstream_log.read_text().split().count("open") == 3


def test_a_client_connection_has_heartbeats_too():
    # A server that accepts, reads the pings and never answers: the client closes it.
    listener = socket.create_server(("127.0.0.1", 0))
    got = []

    def silent_server() -> None:
        conn, _ = listener.accept()
        conn.settimeout(5)
        with contextlib.suppress(OSError):
            while data := conn.recv(100):
                got.append(data)
        conn.close()

    thread = threading.Thread(target=silent_server, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    client = geworker.connect(f"text://127.0.0.1:{port}", heartbeat_interval=0.3,
                              heartbeat_missed_limit=3, heartbeat_data="ping", blocking=True)
    t0 = time.monotonic()
    assert client.wait_closed(timeout=5)
    elapsed = time.monotonic() - t0
    assert 0.6 <= elapsed <= 0.9 + 0.5, elapsed
    thread.join(timeout=5)
    listener.close()
    assert b"".join(got).count(b"ping\n") >= 1  # pinged while it counted misses
