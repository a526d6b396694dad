"""The app the core integration tests run (written into each test's temp dir).

Listeners come from the environment; messages are small commands.
"""

import itertools
import json
import os
import statistics
import time
from time import sleep  # bound at import: must still be gevent's (the worker patches first)

import gevent

from geworker import Server, timers

server = Server(name="core", max_package_size=int(os.environ.get("MAX_PACKAGE", 10 * 2**20)))
for url in os.environ.get("URLS", "").split():
    server.listen(url)
if os.environ.get("IDLE_URL"):
    server.listen(os.environ["IDLE_URL"], idle_timeout=1.0)

EVENTS = os.environ.get("EVENTS_DIR", ".")
firings: list[float] = []
state = {"worker": None}


def record(line: str) -> None:
    with open(os.path.join(EVENTS, f"events.{os.getpid()}"), "a") as f:
        f.write(line + "\n")


@server.on_worker_start
def started(worker):
    state["worker"] = worker
    if os.environ.get("FAIL_START"):
        raise RuntimeError("on_worker_start failed on purpose")
    if worker.index == 0 and os.environ.get("TIMER"):
        timers.add(0.010, lambda: firings.append(time.monotonic()))


@server.on_worker_reload
def reloading(worker):
    record("reload")


@server.on_worker_stop
def stopping(worker):
    record("stop")


@server.on_connect
def connected(conn):
    record(f"connect {conn.id}")


@server.on_close
def closed(conn):
    record(f"close {conn.id}")


@server.on_buffer_full
def full(conn):
    record(f"full {conn.id}")


@server.on_buffer_drain
def drained(conn):
    record(f"drain {conn.id}")


@server.on_error
def error(conn, exc):
    record(f"error {conn.id} {type(exc).__name__}")


@server.on_message
def on_message(conn, message):
    if isinstance(message, bytes):
        message = message.decode(errors="replace").strip()
    command, _, arg = message.partition(" ")
    if command == "sleep":
        sleep(float(arg))
        conn.send(f"slept {arg}")
    elif command == "pid":
        conn.send(str(os.getpid()))
    elif command == "index":
        conn.send(f"{state['worker'].index} {os.getpid()}")
    elif command == "ids":
        conn.send(json.dumps([os.getuid(), os.getgid(), os.getgroups()]))
    elif command == "boom":
        raise RuntimeError("boom on purpose")
    elif command == "flood":
        results = [conn.send("x" * 65536) for _ in range(int(arg))]
        record(f"flood {results.count(True)} {results.count(False)}")
    elif command == "later":
        # send from another greenlet, after this callback has returned
        gevent.spawn_later(0.2, conn.send, "from another greenlet")
        conn.send("soon")
    elif command == "pause":
        conn.pause_recv()
        gevent.spawn_later(float(arg), conn.resume_recv)
        conn.send("paused")
    elif command == "pause-forever":
        conn.pause_recv()
        gevent.spawn_later(0.2, conn.close, "closed while paused")
    elif command == "bye":
        conn.close("goodbye")
    elif command == "timer":
        # how far each interval between two firings is from the 10 ms asked for
        errors = sorted(abs(b - a - 0.010) for a, b in itertools.pairwise(firings[5:]))
        conn.send(f"{len(errors)} {statistics.median(errors) * 1000:.3f} {errors[-1] * 1000:.3f}")
    elif command == "stats":
        from geworker.stats import counters

        conn.send(json.dumps(counters.as_dict()))
    else:
        conn.send(message)
