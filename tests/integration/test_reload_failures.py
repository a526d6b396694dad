"""Reloads whose new workers are slow to boot: the old workers keep serving.

The app's ``on_worker_start`` sleeps while a file ``slow-start`` exists next
to it (as many seconds as it says), so the first start is quick and a later
boot is slow. Real ``geworker start -d`` instances, real clients.
"""

from __future__ import annotations

import re
import time

import pytest

from conftest import LineClient, free_port
from support.ops import instances

__all__ = ["instances"]

RETRY_APP = """
import os
import time

from geworker import Server

server = Server(f"text://127.0.0.1:{os.environ['PORT']}", name="echo")
server.listen(f"http://127.0.0.1:{os.environ['HTTP_PORT']}")
SLOW = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow-start")

@server.on_worker_start
def connect_database(worker):
    if os.path.exists(SLOW):
        time.sleep(float(open(SLOW).read()))

@server.on_message
def echo(conn, message):
    if hasattr(message, "method"):  # HTTP: answer the path
        conn.send(message.path)
    elif message == "pid":
        conn.send(str(os.getpid()))
    else:
        conn.send(message)
"""

def _start(instances, workers: int = 2):
    inst = instances(RETRY_APP, port=free_port(), env={"HTTP_PORT": str(free_port())})
    assert inst.start("-w", str(workers)).returncode == 0, inst.log()
    return inst, inst.wait_workers(workers)


@pytest.mark.timeout(120)
def test_old_workers_keep_accepting_while_the_new_ones_boot(instances):
    inst, old = _start(instances)
    (inst.cwd / "slow-start").write_text("4")
    assert inst.cli("reload").returncode == 0
    t0 = time.monotonic()
    answers = []  # (pid, seconds to connect and get the answer)
    while time.monotonic() - t0 < 2.5:  # the new workers sleep in on_worker_start
        start = time.monotonic()
        client = LineClient(inst.port)
        answers.append((int(client.request("pid")), time.monotonic() - start))
        client.close()
        time.sleep(0.1)
    states = [w["state"] for w in inst.status()["workers"] if w["pid"] in old]
    slowest = max(seconds for _, seconds in answers)
    print(f"\n{len(answers)} new connections while the new workers booted, slowest answer "
          f"{slowest * 1000:.0f} ms")
    assert {pid for pid, _ in answers} <= set(old)
    assert slowest < 1.0  # answered by a holding old worker, not queued for the new ones
    assert states == ["holding", "holding"]
    new = inst.wait_workers(2, exclude=set(old), timeout=30)
    assert int(LineClient(inst.port).request("pid")) in new
    assert inst.status()["master"]["exits"] == {"normal": 2}
    held = [float(s) for s in re.findall(r"held for ([\d.]+) s", inst.log())]
    assert len(held) == 2 and min(held) >= 3.0
