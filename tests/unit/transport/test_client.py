"""Client connections in this process: connecting, failing, reconnecting, the blocking style.

The servers are gevent ``StreamServer``s in this process (no gunicorn, no
monkey patching: the client uses gevent's own sockets, as in a plain script).
"""

from __future__ import annotations

import socket
import time

import gevent
import gevent.event
import gevent.socket
import pytest
from gevent.server import StreamServer

import geworker
from geworker import (
    Backoff,
    ConfigurationError,
    ConnectionClosed,
    ConnectionState,
    ConnectRefused,
    ConnectTimeout,
    LocalProtocolError,
)
from geworker.stats import counters
from geworker.transport.blocking import INBOX_PAUSE
from geworker.transport.client import CLIENTS, drain_clients, open_clients
from geworker.transport.runtime import runtime_of

FAST = Backoff(initial=0.05, factor=2.0, max_delay=0.2, jitter=0.0)


class Upstream:
    """A line server in this process that can be stopped and started again on its port.

    ``handle(sock, lines)`` serves one connection (default: echo every line).
    """

    def __init__(self, handle=None) -> None:
        self.port = 0
        self.handle = handle or self.echo
        self.sockets: list = []
        self.accepted = 0
        self.server: StreamServer | None = None

    def start(self) -> Upstream:
        self.server = StreamServer(("127.0.0.1", self.port), self._handle)
        self.server.start()
        self.port = self.server.address[1]
        return self

    def stop(self) -> None:
        self.server.close()
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()

    @property
    def url(self) -> str:
        return f"text://127.0.0.1:{self.port}"

    def drop_last(self, accepted: int) -> None:
        """Close the connection accepted ``accepted``-th, once it is (from the server side)."""
        deadline = time.monotonic() + 2
        while self.accepted < accepted:
            assert time.monotonic() < deadline, "the connection was not accepted"
            gevent.sleep(0.005)
        self.sockets[-1].close()

    def _handle(self, sock, address) -> None:
        self.accepted += 1
        self.sockets.append(sock)
        try:
            self.handle(sock)
        except OSError:
            pass
        finally:
            sock.close()

    @staticmethod
    def echo(sock) -> None:
        while True:
            data = sock.recv(65536)
            if not data:
                return
            sock.sendall(data)


@pytest.fixture
def upstream():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def no_client_left():
    yield
    for conn in open_clients():
        conn.close()
    assert all(c.wait_closed(1) for c in open_clients())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Events:
    """Callbacks that record what happens to a client."""

    def __init__(self) -> None:
        self.log: list = []
        self.changed = gevent.event.Event()

    def callbacks(self, messages: bool = True) -> dict:
        funcs = {"on_connect": self.on_connect, "on_close": self.on_close,
                 "on_error": self.on_error}
        if messages:
            funcs["on_message"] = self.on_message
        return funcs

    def add(self, item) -> None:
        self.log.append(item)
        self.changed.set()

    def on_connect(self, conn) -> None:
        self.add(("connect", conn.connects, conn.is_reconnect))

    def on_message(self, conn, message) -> None:
        self.add(("message", message))

    def on_close(self, conn) -> None:
        self.add("close")

    def on_error(self, conn, exc) -> None:
        self.add(type(exc).__name__)

    def wait_for(self, predicate, timeout: float = 3.0):
        deadline = time.monotonic() + timeout
        while not predicate(self.log):
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; events: {self.log}"
            self.changed.clear()
            self.changed.wait(left)

    def count(self, item) -> int:
        return self.log.count(item)


# -- connecting, sending, receiving ---------------------------------------------


def test_blocking_style_with_receive_and_iteration(upstream):
    conn = geworker.connect(upstream.url)
    assert conn.state is ConnectionState.CONNECTING
    assert conn.send("too early") is False and conn.sends_refused == 1
    assert conn.local_address is None
    with conn:
        assert conn.state.is_open and conn.connects == 1
        assert conn.remote_address == ("127.0.0.1", upstream.port)
        assert conn.local_address[0] == "127.0.0.1"
        assert conn.send("hello") and conn.send("world")
        assert conn.receive(timeout=2) == "hello"
        assert conn.receive(timeout=2) == "world"
        with pytest.raises(TimeoutError):
            conn.receive(timeout=0.05)
        for i in range(3):
            conn.send(f"m{i}")
        messages = iter(conn)
        assert [next(messages) for _ in range(3)] == ["m0", "m1", "m2"]
    assert conn.state is ConnectionState.CLOSED
    assert conn.send("late") is False and conn.sends_refused == 2
    with pytest.raises(ConnectionClosed):
        conn.receive(timeout=1)
    assert list(conn) == []


def test_callback_style_and_attribute_callbacks(upstream):
    events = Events()
    conn = geworker.connect(upstream.url)
    conn.on_connect = events.on_connect
    conn.on_close = events.on_close

    @conn.on_message
    def reply(c, message):
        events.add(("message", message))
        if message == "ping":
            c.send("pong")

    conn.wait_connected(2)
    conn.send("ping")
    events.wait_for(lambda log: ("message", "pong") in log)
    with pytest.raises(LocalProtocolError, match="on_message"):
        conn.receive(timeout=0.1)  # messages go to the callback
    conn.close()
    assert conn.wait_closed(2)
    assert events.log == [("connect", 1, False), ("message", "ping"), ("message", "pong"),
                          "close"]
    with pytest.raises(ConfigurationError):
        conn.on_message = "not a function"


def test_messages_received_before_a_close_are_still_delivered_and_nothing_empty():
    # The peer sends, then closes at once (a partial line last): every message
    # comes through, and the close never produces an empty message.
    def talk_and_close(sock):
        sock.sendall(b"one\ntwo\nthree\npartial")

    server = Upstream(talk_and_close).start()
    try:
        for url in (server.url, server.url.replace("text:", "tcp:")):
            events = Events()
            conn = geworker.connect(url, **events.callbacks())
            assert conn.wait_closed(2)
            messages = [m for kind, m in (e for e in events.log if isinstance(e, tuple)
                                          and e[0] == "message")]
            assert all(messages), f"an empty message: {events.log}"
            if url.startswith("text:"):
                assert messages == ["one", "two", "three"]
            else:
                assert b"".join(messages) == b"one\ntwo\nthree\npartial"
            assert events.count("close") == 1
        conn = geworker.connect(server.url)
        assert [conn.receive(timeout=2) for _ in range(3)] == ["one", "two", "three"]
        with pytest.raises(ConnectionClosed):
            conn.receive(timeout=2)
    finally:
        server.stop()


def test_receive_in_the_connections_own_callback_is_refused(upstream):
    errors = []
    conn = geworker.connect(upstream.url, on_error=lambda c, e: errors.append(e))
    conn.on_connect = lambda c: c.receive(timeout=5)
    gevent.sleep(0.2)
    assert isinstance(errors[0], LocalProtocolError)
    assert "own" in str(errors[0]) or "callback" in str(errors[0])
    conn.close()


def test_the_inbox_is_bounded_by_pausing_the_reads():
    lines = 50 * INBOX_PAUSE

    def flood(sock):
        sock.sendall(b"".join(b"line %d\n" % i for i in range(lines)))
        gevent.sleep(5)

    server = Upstream(flood).start()
    try:
        conn = geworker.connect(server.url, blocking=True)
        gevent.sleep(0.3)
        assert conn.is_recv_paused
        held = len(conn._inbox)
        assert INBOX_PAUSE <= held < INBOX_PAUSE + 10_000  # one read's worth at most past it
        assert [conn.receive(timeout=2) for _ in range(lines)] == [f"line {i}"
                                                                   for i in range(lines)]
        assert not conn.is_recv_paused
        conn.close()
    finally:
        server.stop()


# -- failures ---------------------------------------------------------------------


def test_a_refused_connect_reaches_on_error_and_never_on_close():
    port = free_port()
    events = Events()
    before = counters.errors["connect_refused"]
    conn = geworker.connect(f"text://127.0.0.1:{port}", **events.callbacks())
    with pytest.raises(ConnectRefused) as refused:
        conn.wait_connected(2)
    assert f"127.0.0.1:{port}" in str(refused.value) and "refused" in str(refused.value)
    assert refused.value.url == f"text://127.0.0.1:{port}"
    assert events.log == ["ConnectRefused"]
    assert conn.state is ConnectionState.CLOSED and conn.connects == 0 and conn.failures == 1
    assert conn.last_error is refused.value
    assert counters.errors["connect_refused"] == before + 1
    with pytest.raises(ConnectRefused):
        geworker.connect(f"tcp://127.0.0.1:{port}", blocking=True)
    with pytest.raises(ConnectRefused), geworker.connect(f"frame://127.0.0.1:{port}"):
        pass


def test_a_missing_unix_socket_is_refused(tmp_path):
    with pytest.raises(ConnectRefused, match="nothing listens"):
        geworker.connect(f"unix://{tmp_path}/nope.sock", blocking=True)


def test_connect_timeout_names_the_step():
    # A full accept queue: the kernel drops our SYN, so the TCP connect hangs.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    filler = gevent.socket.create_connection(("127.0.0.1", port))
    try:
        events = Events()
        started = time.monotonic()
        conn = geworker.connect(f"text://127.0.0.1:{port}", connect_timeout=0.3,
                                **events.callbacks())
        with pytest.raises(ConnectTimeout) as timed_out:
            conn.wait_connected(3)
        assert 0.25 < time.monotonic() - started < 2
        assert f"connecting to 127.0.0.1:{port}" in str(timed_out.value)
        assert "0.3s" in str(timed_out.value)
        assert events.log == ["ConnectTimeout"]
    finally:
        filler.close()
        listener.close()


def test_websocket_handshake_timeout_and_close_while_connecting():
    # A server that accepts but never answers the WebSocket handshake.
    ended = []

    def silent(sock):
        while sock.recv(65536):
            pass
        ended.append("eof")

    server = Upstream(silent).start()
    try:
        with pytest.raises(ConnectTimeout, match="WebSocket handshake"):
            geworker.connect(f"ws://127.0.0.1:{server.port}/", connect_timeout=0.2,
                             blocking=True)
        events = Events()
        conn = geworker.connect(f"ws://127.0.0.1:{server.port}/", reconnect=FAST,
                                **events.callbacks())
        gevent.sleep(0.1)
        assert conn.state is ConnectionState.CONNECTING
        conn.close()  # abandons the attempt under way: no callback, no retry
        assert conn.state is ConnectionState.CLOSED and conn.wait_closed(0)
        gevent.sleep(0.3)
        assert events.log == [] and conn.connects == 0
        assert server.accepted == 2  # (both attempts, and no retry)
        assert ended == ["eof", "eof"]  # both sockets were closed
    finally:
        server.stop()


# -- reconnecting -------------------------------------------------------------------


def test_automatic_reconnect_after_the_server_restarts(upstream):
    events = Events()
    conn = geworker.connect(upstream.url, reconnect=FAST, **events.callbacks())
    events.wait_for(lambda log: ("connect", 1, False) in log)
    first_id, conn.context["mine"] = conn.id, 1
    upstream.drop_last(1)
    upstream.stop()
    events.wait_for(lambda log: log.count("ConnectRefused") >= 3)  # it keeps trying
    assert conn.state in (ConnectionState.CLOSED, ConnectionState.CONNECTING)
    assert conn.send("while away") is False
    restarted = time.monotonic()
    upstream.start()
    events.wait_for(lambda log: ("connect", 2, True) in log)
    assert time.monotonic() - restarted <= FAST.max_delay + 0.2  # within the back-off bound
    assert conn.id == first_id and conn.context == {"mine": 1}  # the same object
    assert events.count("close") == 1  # once per connection that opened
    conn.send("back")
    events.wait_for(lambda log: ("message", "back") in log)
    conn.close()
    assert conn.wait_closed(2)
    gevent.sleep(0.2)
    assert events.count(("connect", 3, True)) == 0  # close() is for good


def test_reconnect_by_hand_from_on_close(upstream):
    events = Events()
    conn = geworker.connect(upstream.url, **events.callbacks())

    @conn.on_close
    def again(c):
        events.add("close")
        if c.connects < 3:
            c.reconnect(0.05)  # Workerman's onClose idiom

    conn.wait_connected(2)
    for n in (2, 3):
        upstream.drop_last(n - 1)  # the server drops it
        events.wait_for(lambda log, n=n: ("connect", n, True) in log)
    upstream.drop_last(3)
    assert conn.wait_closed(2)  # the third close did not ask for more
    assert events.count("close") == 3 and conn.connects == 3


def test_cancel_reconnect_in_on_close_and_reconnect_from_closed(upstream):
    events = Events()
    conn = geworker.connect(upstream.url, reconnect=FAST, **events.callbacks())
    conn.on_close = lambda c: (events.add("close"), c.cancel_reconnect())
    conn.wait_connected(2)
    upstream.drop_last(1)
    assert conn.wait_closed(2)
    gevent.sleep(0.2)
    assert conn.connects == 1 and not conn.reconnect_pending
    conn.on_close = events.on_close
    conn.reconnect(0.01)  # starts it again
    conn.wait_connected(2)
    assert conn.connects == 2
    conn.reconnect()  # while open: close, then connect again
    events.wait_for(lambda log: ("connect", 3, True) in log)
    assert events.count("close") == 2
    conn.close()


def test_a_refused_send_never_queues_for_the_next_connection(upstream):
    received = []
    conn = geworker.connect(upstream.url, reconnect=FAST,
                            on_message=lambda c, m: received.append(m))
    conn.wait_connected(2)
    upstream.drop_last(1)
    upstream.stop()
    gevent.sleep(0.1)
    refused = conn.sends_refused
    assert [conn.send(f"lost {i}") for i in range(5)] == [False] * 5
    assert conn.sends_refused == refused + 5
    upstream.start()
    conn.wait_connected(2)
    conn.send("after")
    gevent.sleep(0.2)
    assert received == ["after"]
    conn.close()


def test_give_up_after_failed_attempts():
    port = free_port()
    events = Events()
    conn = geworker.connect(f"text://127.0.0.1:{port}", **events.callbacks(),
                            reconnect=Backoff(initial=0.01, max_delay=0.01, give_up_after=3))
    assert conn.wait_closed(2)
    assert events.log == ["ConnectRefused"] * 3 and conn.failures == 3
    with pytest.raises(ConnectRefused):
        conn.wait_connected(0)


def test_cancel_reconnect_stops_a_scheduled_attempt():
    port = free_port()
    events = Events()
    conn = geworker.connect(f"text://127.0.0.1:{port}", **events.callbacks(),
                            reconnect=Backoff(initial=0.3, jitter=0))
    events.wait_for(lambda log: log == ["ConnectRefused"])
    assert conn.reconnect_pending
    conn.cancel_reconnect()
    assert conn.wait_closed(0) and not conn.reconnect_pending
    gevent.sleep(0.4)
    assert events.log == ["ConnectRefused"]


def test_draining_closes_clients_for_good(upstream):
    # What a stopping worker does: open clients close, scheduled attempts never start.
    events = Events()
    conn = geworker.connect(upstream.url, reconnect=FAST, **events.callbacks())
    waiting = geworker.connect(f"text://127.0.0.1:{free_port()}", on_error=lambda c, e: None,
                               reconnect=Backoff(initial=0.2, jitter=0))
    conn.wait_connected(2)
    gevent.sleep(0.05)
    assert waiting.reconnect_pending
    try:
        assert drain_clients() == 1
        assert conn.wait_closed(2) and waiting.wait_closed(1)
        gevent.sleep(0.4)
        assert events.log == [("connect", 1, False), "close"]
        assert waiting.connects == 0 and waiting.failures == 1  # no second attempt
    finally:
        runtime_of(CLIENTS).draining = False


# -- the back-off ---------------------------------------------------------------------


def test_backoff_grows_exponentially_to_its_cap_with_bounded_jitter():
    policy = Backoff(initial=0.5, factor=2.0, max_delay=30.0, jitter=0.2)
    assert [policy.bound(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert policy.bound(10_000) == 30.0
    for n in range(10):
        for _ in range(50):
            assert 0.8 * policy.bound(n) <= policy.delay(n) <= policy.bound(n)
    assert Backoff(jitter=0).delay(3) == 4.0
    for bad in ({"initial": -1}, {"factor": 0.5}, {"max_delay": 0.1}, {"jitter": 2},
                {"give_up_after": 0}):
        with pytest.raises(ConfigurationError):
            Backoff(**bad)


# -- URLs -------------------------------------------------------------------------------


@pytest.mark.parametrize("url, error", [
    ("127.0.0.1:80", "needs a scheme"),
    ("http://127.0.0.1:80", "HTTP client"),
    ("nope://127.0.0.1:80", "unknown scheme"),
    ("text://127.0.0.1", "needs host:port"),
    ("text+udp://127.0.0.1:1", None),  # fine
    ("unix://", "needs a path"),
    ("text+tls+x://h:1", "unknown transport"),
])
def test_url_errors(url, error):
    if error is None:
        geworker.connect(url).close()
        return
    with pytest.raises(ConfigurationError, match=error):
        geworker.connect(url)


def test_argument_errors():
    with pytest.raises(ConfigurationError, match="ssl_context"):
        import ssl

        geworker.connect("text://h:1", ssl_context=ssl.create_default_context())
    with pytest.raises(ConfigurationError, match="UDP"):
        geworker.connect("udp://h:1", reconnect=True)
    with pytest.raises(ConfigurationError, match="WebSocket"):
        geworker.connect("text://h:1", subprotocols=["x"])
    with pytest.raises(ConfigurationError, match="unknown option"):
        geworker.connect("text://h:1", max_pakage_size=1)
    with pytest.raises(ConfigurationError, match="http://"):
        geworker.connect("text://h:1", proxy="socks5://p:1")
    with pytest.raises(ConfigurationError, match="on_message"):
        geworker.connect("text://h:1", on_message=lambda: None)
