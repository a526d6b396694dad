"""The prefork skeleton the peer servers share: one listening socket, N forked workers."""

import os
import socket
from collections.abc import Callable


def listen(port: int, reuseport: bool = False) -> socket.socket:
    """A non-blocking listening socket on 127.0.0.1:port, shared by every worker
    (or, with ``reuseport``, one of several that the kernel balances between)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def run_workers(workers: int, serve: Callable[[], None],
                fork: Callable[[], int] = os.fork) -> None:
    """Fork ``workers`` processes running ``serve()``, then wait for them all."""
    for _ in range(workers):
        if fork() == 0:
            serve()
            os._exit(0)
    while True:
        try:
            os.wait()
        except ChildProcessError:
            return
