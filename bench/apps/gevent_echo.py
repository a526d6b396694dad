"""Raw gevent ``StreamServer`` newline or frame echo, forked into N processes sharing one socket.

Usage: python gevent_echo.py PORT text|frame WORKERS [reuseport]

Each message is written back with its own ``sendall``, as a framework
calling a per-message callback would. With ``reuseport`` each process
listens on its own ``SO_REUSEPORT`` socket, so the kernel spreads the
connections evenly (one shared socket lets the busiest process take most).
"""

import socket
import sys

import gevent
from gevent.server import StreamServer
from prefork import listen, run_workers


def handle_text(sock, address):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recv, sendall = sock.recv, sock.sendall
    pending = b""
    while True:
        data = recv(65536)
        if not data:
            return
        if pending:
            data = pending + data
        lines = data.split(b"\n")
        pending = lines.pop()
        for line in lines:
            sendall(line + b"\n")


def handle_frame(sock, address):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    recv, sendall = sock.recv, sock.sendall
    buffer = bytearray()
    while True:
        data = recv(65536)
        if not data:
            return
        buffer += data
        start, available = 0, len(buffer)
        while available - start >= 4:
            total = int.from_bytes(buffer[start : start + 4], "big")
            if total < 4:
                return
            if available - start < total:
                break
            sendall(bytes(buffer[start : start + total]))
            start += total
        del buffer[:start]


def main():
    port, kind, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    handle = handle_text if kind == "text" else handle_frame
    if sys.argv[4:] == ["reuseport"]:

        def serve():
            StreamServer(listen(port, reuseport=True), handle).serve_forever()

        run_workers(workers, serve, fork=gevent.fork)
        return
    server = StreamServer(("127.0.0.1", port), handle, backlog=4096)
    server.init_socket()
    run_workers(workers, server.serve_forever, fork=gevent.fork)


if __name__ == "__main__":
    main()
