"""A plain script (no monkey patching) holding one reconnecting client connection.

``python reconnect_client.py URL`` connects with automatic reconnects and
prints one line per event, each with ``time.time()`` and the process's open
file descriptors: ``connect <n> <is_reconnect> <time> <fds>``, ``close
<time> <fds>``, ``error <ConnectError subclass> <time> <fds>``,
``message <text> <time> <fds>``. Runs until killed.
"""

from __future__ import annotations

import os
import sys
import time

import geworker


def line(*words: object) -> None:
    fds = len(os.listdir("/proc/self/fd"))
    print(*words, f"{time.time():.4f}", fds, flush=True)


def on_connect(conn) -> None:
    line("connect", conn.connects, conn.is_reconnect)
    conn.send(f"hello {conn.connects}")


conn = geworker.connect(
    sys.argv[1],
    reconnect=geworker.Backoff(initial=0.05, factor=2.0, max_delay=0.4, jitter=0.2),
    connect_timeout=2.0,
    on_connect=on_connect,
    on_close=lambda c: line("close"),
    on_error=lambda c, exc: line("error", type(exc).__name__),
    on_message=lambda c, message: line("message", message.replace(" ", "_")),
)
conn.wait_closed()
