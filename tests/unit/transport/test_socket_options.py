"""tcp_keepalive, tcp_user_timeout and socket_send_buffer reach the accepted socket."""

from __future__ import annotations

import socket

from geworker.settings import Options
from geworker.transport.heartbeat import apply_socket_options


def _accepted() -> tuple[socket.socket, socket.socket, socket.socket]:
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return listener, client, server


def test_tcp_options_are_set_on_the_socket():
    listener, client, server = _accepted()
    try:
        options = Options(tcp_keepalive=30, tcp_user_timeout=7.5, socket_send_buffer=32768)
        apply_socket_options(server, options, tcp=True)
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 10
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 7500
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 2 * 32768
    finally:
        for s in (listener, client, server):
            s.close()


def test_defaults_leave_the_socket_alone():
    listener, client, server = _accepted()
    try:
        apply_socket_options(server, Options(), tcp=True)
        assert server.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 0
    finally:
        for s in (listener, client, server):
            s.close()
