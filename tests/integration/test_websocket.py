"""WebSocket against real gunicorn (-w 2): websocket-client, websockets (sync) and raw sockets.

The app is tests/apps/websocket_app.py. One server is shared by the module;
signal tests (TERM, HUP) start their own.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import struct
import time
from pathlib import Path

import pytest
import websocket  # websocket-client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from conftest import Gunicorn, client_frame, free_port, wait_until

APPS = Path(__file__).resolve().parent.parent / "apps"
APP = f"""
import sys
sys.path.insert(0, {str(APPS)!r})
from websocket_app import server
"""


ZERO_MASK = b"\0\0\0\0"  # leaves the payload bytes on the wire as they are


def start(tmp: Path, gunicorn_factory=None, **ports: int) -> Gunicorn:
    env = {name: str(port) for name, port in ports.items()}
    env["CLOSE_LOG"] = str(tmp / "closes.log")
    if gunicorn_factory is not None:
        return gunicorn_factory(APP, env=env)
    # the tests of callback errors provoke these, with their tracebacks
    g = Gunicorn(tmp, APP, [], env, 2, allow_traceback=[
        "RuntimeError: boom", "RuntimeError: on_websocket_connect failed"])
    g.wait_ready()
    return g


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ws")
    ports = {"WS_PORT": free_port(), "KA_PORT": free_port(), "HTTP_PORT": free_port()}
    g = start(tmp, **ports)
    try:
        g.ports = ports
        g.ws = f"ws://127.0.0.1:{ports['WS_PORT']}"
        g.close_log = tmp / "closes.log"
        g.initial_pids = sorted(g.worker_pids())
        assert len(g.initial_pids) == 2
        yield g
    finally:
        g.stop()
    g.check_log()


def raw_handshake(port: int, path: str = "/", extra: bytes = b"") -> tuple[socket.socket, bytes]:
    """Open a WebSocket with a raw socket; ``extra`` rides in the same write as the request."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    key = base64.b64encode(os.urandom(16))
    sock.sendall(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key +
                 b"\r\nSec-WebSocket-Version: 13\r\n\r\n" + extra)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock, rest


def read_frames(sock: socket.socket, buf: bytes = b"", count: int = 0,
                timeout: float = 5.0) -> list[tuple[int, bytes]]:
    """Server frames until a close frame, EOF or ``count`` frames, as (opcode, payload)."""
    frames = []
    sock.settimeout(timeout)
    while True:
        while len(buf) >= 2:
            n, pos = buf[1] & 0x7F, 2
            if n == 126:
                n, pos = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                n, pos = struct.unpack("!Q", buf[2:10])[0], 10
            if len(buf) < pos + n:
                break
            frames.append((buf[0] & 0x0F, buf[pos:pos + n]))
            buf = buf[pos + n:]
            if frames[-1][0] == 0x8 or len(frames) == count:
                return frames
        chunk = sock.recv(65536)
        if not chunk:
            return frames
        buf += chunk


def test_echo_text_and_binary_with_websocket_client(srv):
    ws = websocket.create_connection(srv.ws + "/echo", timeout=5)
    assert ws.recv() == "welcome"
    ws.send("héllo")
    assert ws.recv() == "héllo"
    ws.send_binary(b"\x00\xffbin")
    opcode, data = ws.recv_data()
    assert (opcode, data) == (websocket.ABNF.OPCODE_BINARY, b"\x00\xffbin")
    big = os.urandom(60 * 1024)
    ws.send_binary(big)
    assert ws.recv() == big
    ws.ping(b"are you there")
    ws.close()


def test_echo_with_websockets_sync_client_and_compression(srv):
    with connect(srv.ws + "/echo", open_timeout=5) as ws:  # offers permessage-deflate
        assert ws.recv(timeout=5) == "welcome"
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        text = "compressible " * 4000
        ws.send(text)
        assert ws.recv(timeout=5) == text
        ws.send(b"\x01\x02")
        assert ws.recv(timeout=5) == b"\x01\x02"
        # A fragmented message is reassembled.
        ws.send(["frag-1|", "frag-2|", "frag-3"])
        assert ws.recv(timeout=5) == "frag-1|frag-2|frag-3"


def test_reject_with_status_and_accept_with_subprotocol_and_header(srv):
    with pytest.raises(InvalidStatus) as exc:
        connect(srv.ws + "/deny", open_timeout=5)
    assert exc.value.response.status_code == 403
    assert exc.value.response.headers["X-Reason"] == "test"
    assert exc.value.response.body == b"denied"
    with pytest.raises(websocket.WebSocketBadStatusException) as exc2:
        websocket.create_connection(srv.ws + "/teapot", timeout=5)
    assert exc2.value.status_code == 418
    with pytest.raises(InvalidStatus) as exc:
        connect(srv.ws + "/crash", open_timeout=5)
    assert exc.value.response.status_code == 500
    with connect(srv.ws + "/chat", subprotocols=["other", "chat"], open_timeout=5) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["X-Hello"] == "world"
    with connect(srv.ws + "/plain", open_timeout=5) as ws:
        assert ws.subprotocol is None


def test_handshake_request_sees_path_query_cookies(srv):
    ws = websocket.create_connection(srv.ws + "/room/a%20b?user=ann&n=1", timeout=5,
                                     cookie="session=s3cr3t; theme=dark",
                                     header=["X-Agent: pytest"], subprotocols=["chat", "v2"])
    assert ws.recv() == "welcome"
    ws.send("info")
    assert json.loads(ws.recv()) == {
        "path": "/room/a b", "query": {"user": "ann", "n": "1"},
        "cookies": {"session": "s3cr3t", "theme": "dark"},
        "subprotocols": ["chat", "v2"], "agent": "pytest"}
    ws.close()


def test_first_frame_in_the_handshake_packet_is_not_lost(srv):
    sock, rest = raw_handshake(srv.ports["WS_PORT"], "/early",
                               extra=client_frame(0x1, b"early bird", key=ZERO_MASK))
    assert read_frames(sock, rest, count=2) == [(0x1, b"welcome"), (0x1, b"early bird")]
    sock.close()


def test_keepalive_closes_a_silent_peer_and_runs_on_close(srv):
    port = srv.ports["KA_PORT"]
    started = time.monotonic()
    sock, rest = raw_handshake(port, "/silent")  # never answers the pings
    frames = read_frames(sock, rest, timeout=5)
    elapsed = time.monotonic() - started
    assert (0x9, b"geworker") in frames  # it was pinged
    assert frames[-1][0] == 0x8 and struct.unpack("!H", frames[-1][1][:2])[0] == 1011
    assert sock.recv(10) == b""
    assert elapsed < 0.3 + 0.5 + 2.0  # interval + timeout, plus slack for a busy machine
    sock.close()
    wait_until(lambda: "/silent 1011" in srv.close_log.read_text(), 5,
               what="on_close of the silent peer")
    # A peer that answers pings stays connected (websockets answers them by itself).
    with connect(f"ws://127.0.0.1:{port}/alive", open_timeout=5, ping_interval=None) as ws:
        assert ws.recv(timeout=5) == "welcome"
        time.sleep(1.5)
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


def test_slow_handshake_is_closed_after_the_handshake_timeout(srv):
    with socket.create_connection(("127.0.0.1", srv.ports["KA_PORT"]), timeout=5) as s:
        started = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")  # and never the rest
        time.sleep(0.5)
        s.sendall(b"X-Slow: 1\r\n")  # trickling bytes do not extend the deadline
        assert s.recv(100) == b""
        assert 0.9 < time.monotonic() - started < 3.0


def test_oversize_and_floods_never_crash_a_worker(srv):
    # One message over 64 KiB: close 1009.
    ws = websocket.create_connection(srv.ws + "/big", timeout=5)
    assert ws.recv() == "welcome"
    ws.send_binary(b"x" * (64 * 1024 + 1))
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE and struct.unpack("!H", data[:2])[0] == 1009
    ws.close()
    # The same through fragments, with websockets.
    with connect(srv.ws + "/frags", open_timeout=5, compression=None) as c:
        assert c.recv(timeout=5) == "welcome"
        c.send([b"y" * 30000, b"y" * 30000, b"y" * 30000])
        with pytest.raises(ConnectionClosed) as exc:
            c.recv(timeout=5)
        assert exc.value.rcvd.code == 1009
    # A frame announcing 2**62 bytes, then megabytes of junk, then garbage opcodes.
    for junk in (b"\x82\xff" + struct.pack("!Q", 2**62) + b"\0\0\0\0" + b"z" * (4 * 1024 * 1024),
                 os.urandom(1024 * 1024), b"\x83\x80\0\0\0\0" * 1000):
        sock, rest = raw_handshake(srv.ports["WS_PORT"], "/flood")
        with contextlib.suppress(OSError):  # the server may close before reading it all
            sock.sendall(junk)
        frames = read_frames(sock, rest)
        assert frames[-1][0] == 0x8
        assert struct.unpack("!H", frames[-1][1][:2])[0] in (1002, 1009)
        sock.close()
    # An exception in on_message closes that connection with 1011, nothing else.
    with connect(srv.ws + "/boom", open_timeout=5) as c:
        c.recv(timeout=5)
        c.send("boom")
        with pytest.raises(ConnectionClosed) as exc:
            c.recv(timeout=5)
        assert exc.value.rcvd.code == 1011
    assert sorted(srv.worker_pids()) == srv.initial_pids
    with connect(srv.ws + "/after", open_timeout=5) as c:
        assert c.recv(timeout=5) == "welcome"
        c.send("still alive")
        assert c.recv(timeout=5) == "still alive"


def test_bad_handshakes_get_http_errors(srv):
    for request, status in (
            (b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"426"),
            (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", b"405"),
            (b"\x16\x03\x01 not http\r\n\r\n", b"400")):
        with socket.create_connection(("127.0.0.1", srv.ports["WS_PORT"]), timeout=5) as s:
            s.sendall(request)
            data = b""
            while chunk := s.recv(4096):
                data += chunk
            assert data.startswith(b"HTTP/1.1 " + status), data


# -- point 8: WebSocket and HTTP on one http:// port --------------------------


def test_http_and_websocket_share_one_port(srv):
    pytest.importorskip("geworker.http.connection", reason="HTTP support is not merged yet")
    import http.client

    port = srv.ports["HTTP_PORT"]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/page")
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b"hello http")
    # Keep-alive, then an upgrade on the same TCP connection is not required by
    # clients: each library opens its own.
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/live?x=1", timeout=5)
    assert ws.recv() == "welcome"  # on_websocket_connect ran
    ws.send("hi")
    assert ws.recv() == "ws:hi"  # on_websocket_message, not on_message
    ws.send("info")
    assert ws.recv() == "ws:info"
    ws.close()
    with connect(f"ws://127.0.0.1:{port}/chat", subprotocols=["chat"], open_timeout=5) as c:
        assert c.subprotocol == "chat"
        assert c.recv(timeout=5) == "welcome"
        c.send(b"\x00bin")
        assert c.recv(timeout=5) == b"ws:\x00bin"
    with pytest.raises(InvalidStatus) as exc:
        connect(f"ws://127.0.0.1:{port}/deny", open_timeout=5)
    assert exc.value.response.status_code == 403
    # A frame in the same packet as the upgrade request (HTTP's trailing data).
    sock, rest = raw_handshake(port, "/early", extra=client_frame(0x1, b"early", key=ZERO_MASK))
    assert read_frames(sock, rest, count=2) == [(0x1, b"welcome"), (0x1, b"ws:early")]
    sock.sendall(client_frame(0x8, struct.pack("!H", 1000), key=ZERO_MASK))
    assert read_frames(sock)[-1] == (0x8, struct.pack("!H", 1000))
    sock.close()
    wait_until(lambda: "/early 1000" in srv.close_log.read_text(), 5, what="on_close")


NO_WS_APP = """
import os
from geworker import Server
server = Server(f"http://127.0.0.1:{os.environ['HTTP_PORT']}")

@server.on_message
def page(conn, request):
    conn.send("plain http")
"""


def test_upgrade_without_websocket_callbacks_is_refused(gunicorn):
    pytest.importorskip("geworker.http.connection", reason="HTTP support is not merged yet")
    port = free_port()
    gunicorn(NO_WS_APP, env={"HTTP_PORT": str(port)})
    with pytest.raises(InvalidStatus) as exc:
        connect(f"ws://127.0.0.1:{port}/", open_timeout=5)
    assert exc.value.response.status_code == 400


# -- drain: 1001 before the connection ends ----------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_worker_stop_and_reload_send_1001(gunicorn, tmp_path, sig):
    port = free_port()
    g = start(tmp_path, gunicorn, WS_PORT=port)
    stack = contextlib.ExitStack()
    idle = [stack.enter_context(connect(f"ws://127.0.0.1:{port}/idle{i}", open_timeout=5))
            for i in range(4)]
    busy = stack.enter_context(connect(f"ws://127.0.0.1:{port}/busy", open_timeout=5))
    for c in [*idle, busy]:
        assert c.recv(timeout=5) == "welcome"
    busy.send("slow")  # in flight when the signal arrives: answered first
    time.sleep(0.2)
    g.signal(sig)
    assert busy.recv(timeout=5) == "slow done"
    for c in [*idle, busy]:
        with pytest.raises(ConnectionClosed) as exc:
            c.recv(timeout=8)
        assert exc.value.rcvd is not None and exc.value.rcvd.code == 1001
        assert exc.value.rcvd.reason == "going away"
    stack.close()
    if sig == signal.SIGHUP:  # the new workers serve
        g.wait_ready(4)
        with connect(f"ws://127.0.0.1:{port}/new", open_timeout=5) as c:
            assert c.recv(timeout=5) == "welcome"
    else:
        g.proc.wait(timeout=15)


ORIGIN_APP = """
import os
from geworker import Server
server = Server(f"websocket://127.0.0.1:{os.environ['WS_PORT']}",
                websocket_origins=("https://Chat.example.com",))

@server.on_message
def echo(conn, message):
    conn.send(message)
"""


def test_a_handshake_from_a_forbidden_origin_gets_403(gunicorn):
    port = free_port()
    g = gunicorn(ORIGIN_APP, workers=1, env={"WS_PORT": str(port)})
    url = f"ws://127.0.0.1:{port}/"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=5, origin="https://evil.example.net")
    assert refused.value.status_code == 403
    allowed = websocket.create_connection(url, timeout=5, origin="https://chat.example.com")
    allowed.send("hi")
    assert allowed.recv() == "hi"
    allowed.close()
    bare = websocket.create_connection(url, timeout=5, suppress_origin=True)  # not a browser
    bare.send("yo")
    assert bare.recv() == "yo"
    bare.close()
    assert "refused with 403" in g.log()
