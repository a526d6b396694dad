"""Canaries: the gevent internals geworker.transport._gevent relies on are still there.

Each test names the private attribute it checks, so that a gevent upgrade
that moves one fails here, loudly, rather than somewhere in a server.
"""

from __future__ import annotations

import _socket
import socket
import ssl

import gevent
import gevent.event
import gevent.socket
import gevent.ssl
import pytest
from gevent.server import DatagramServer, StreamServer

from geworker.transport import _gevent


def need(obj, name: str, used_by: str) -> None:
    assert hasattr(obj, name), (
        f"gevent {gevent.__version__}: {type(obj).__module__}.{type(obj).__qualname__} has no "
        f"{name!r} any more (used by geworker.transport._gevent.{used_by})")


def test_socket_read_watcher():
    a, b = gevent.socket.socketpair()
    try:
        need(a, "_read_event", "read_watcher")
        assert _gevent.has_read_watcher(a) and not _gevent.has_read_watcher(object())
        watcher = _gevent.read_watcher(a)
        for name in ("active", "start", "stop"):
            need(watcher, name, "read_watcher")
        fired = gevent.event.Event()
        watcher.start(fired.set)
        assert watcher.active
        b.sendall(b"x")
        assert fired.wait(1), "the socket's _read_event did not fire on input"
        watcher.stop()
        assert not watcher.active
        assert a.recv(1) == b"x"  # gevent's recv still works on it afterwards
    finally:
        a.close()
        b.close()


def test_os_socket_under_the_wrapper():
    a, b = gevent.socket.socketpair()
    try:
        need(a, "_sock", "os_socket")
        raw = _gevent.os_socket(a)
        assert isinstance(raw, _socket.socket) and raw.fileno() == a.fileno(), (
            "gevent socket's _sock is no longer the OS socket")
        with pytest.raises(BlockingIOError):
            raw.recv(1, socket.MSG_DONTWAIT)  # never waits
        assert _gevent.os_socket("plain") == "plain"
    finally:
        a.close()
        b.close()


def test_tls_session_of_an_ssl_socket(tls_certs):
    cert, key, _ = tls_certs
    server_context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    client_context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_context.check_hostname = False
    client_context.verify_mode = ssl.CERT_NONE
    a, b = gevent.socket.socketpair()
    server_side = gevent.spawn(server_context.wrap_socket, a, server_side=True)
    client = client_context.wrap_socket(b)
    tls = server_side.get(timeout=2)
    try:
        need(tls, "_sslobj", "tls_session")
        session = _gevent.tls_session(tls)
        assert session is not None and hasattr(session, "write"), (
            "gevent SSLSocket's _sslobj is no longer an SSL object with write()")
        assert session.write(b"hello") == 5  # what _TLSSender does, without waiting
        assert client.recv(5) == b"hello"
    finally:
        client.close()
        tls.close()
    plain, other = gevent.socket.socketpair()
    assert _gevent.tls_session(plain) is None  # a plain socket has none
    plain.close()
    other.close()


def test_tls_client_socket_on_a_stdlib_context(tls_certs):
    # The stdlib context of an unpatched script, through gevent's private _context argument.
    import inspect

    assert "_context" in inspect.signature(gevent.ssl.SSLSocket).parameters, (
        f"gevent {gevent.__version__}: gevent.ssl.SSLSocket takes no _context argument any "
        "more (used by geworker.transport._gevent.tls_client_socket)")
    cert, key, client_context = tls_certs
    assert type(client_context) is ssl.SSLContext  # the stdlib's, not gevent's
    server_context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    a, b = gevent.socket.socketpair()
    server_side = gevent.spawn(server_context.wrap_socket, a, server_side=True)
    client = _gevent.tls_client_socket(b, client_context, "localhost")
    try:
        assert isinstance(client, gevent.ssl.SSLSocket)
        with gevent.Timeout(2):
            client.do_handshake()  # cooperative: the server's handshake runs meanwhile
        tls = server_side.get(timeout=2)
        tls.sendall(b"verified")
        assert client.recv(8) == b"verified"
        tls.close()
    finally:
        client.close()


def test_stream_server_hooks():
    accepted = gevent.event.Event()
    handled = []

    def handle(sock, address):
        handled.append(sock)
        accepted.set()

    server = StreamServer(("127.0.0.1", 0), handle)
    for name in ("do_close", "full", "_start_accepting_if_started"):
        need(server, name, "keep_socket_open / set_accept_gate / accept_retry")
    gate = {"full": True}
    _gevent.keep_socket_open(server)
    _gevent.set_accept_gate(server, lambda: gate["full"])
    server.start()
    client = gevent.socket.create_connection(server.address)
    try:
        assert not accepted.wait(0.1), "StreamServer accepted although full() was true"
        gate["full"] = False
        _gevent.accept_retry(server)()
        assert accepted.wait(1), "_start_accepting_if_started did not resume accepting"
        gevent.sleep(0.01)  # the handler has returned
        [sock] = handled
        assert sock.fileno() != -1, "StreamServer closed the socket despite do_close"
        sock.sendall(b"still open")
        assert client.recv(100) == b"still open"
        sock.close()
    finally:
        client.close()
        server.stop()


def test_datagram_server_internals():
    server = DatagramServer(("127.0.0.1", 0), lambda data, address: None)
    server.init_socket()
    try:
        need(server, "_socket", "datagram_os_socket")
        need(server, "_stop_event", "stop_datagram_reads")
        assert isinstance(_gevent.datagram_os_socket(server), _socket.socket), (
            "DatagramServer._socket is no longer the OS socket")
        stop = server._stop_event
        stop.clear()
        _gevent.stop_datagram_reads(server)
        assert stop.is_set(), "DatagramServer._stop_event is no longer an Event"
    finally:
        server.close()


def test_loop_iteration_counts_iterations():
    loop = gevent.get_hub().loop
    need(loop, "iteration", "(connection._read_loop's fairness check)")
    before = loop.iteration
    gevent.sleep(0.001)
    assert isinstance(before, int) and loop.iteration > before


def test_a_restarted_one_shot_timer_fires_at_once_and_oneshot_waits():
    # The quirk OneShot works around; if this starts failing, gevent fixed it.
    import time

    import gevent

    loop = gevent.get_hub().loop
    fired: list[float] = []
    timer = loop.timer(0.05)
    timer.start(lambda: fired.append(time.monotonic()))
    gevent.sleep(0.08)
    restarted = time.monotonic()
    timer.start(lambda: fired.append(time.monotonic()))
    gevent.sleep(0.08)
    timer.close()
    assert len(fired) == 2 and fired[1] - restarted < 0.02, "gevent re-bases restarted timers now"
    from geworker.transport._gevent import OneShot

    shot, times = OneShot(loop, 0.05), []
    for _ in range(2):
        t0 = time.monotonic()
        shot.start(lambda t0=t0: times.append(time.monotonic() - t0))
        gevent.sleep(0.08)
    assert len(times) == 2 and all(t >= 0.045 for t in times), times


def test_stream_server_reads_through_do_read():
    # guard_accept wraps do_read: _do_read must still call it for each accept.
    import inspect

    from gevent.baseserver import BaseServer
    from gevent.server import StreamServer

    assert "self.do_read()" in inspect.getsource(BaseServer._do_read), (
        "gevent's BaseServer._do_read no longer calls do_read(): guard_accept needs a new hook")
    assert callable(StreamServer.do_read)
