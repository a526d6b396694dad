"""Reloads whose new workers are slow or fail to boot: the old workers keep serving.

The app's ``on_worker_start`` sleeps while a file ``slow-start`` exists next
to it (as many seconds as it says) and raises while ``database-down``
exists, so the first start succeeds and a later boot is slow or fails until
the test removes the file. Real ``geworker start -d`` instances, real clients.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections import defaultdict

import pytest

from conftest import LineClient, free_port, pid_alive, traceback_ends, wait_until
from support.load_clients import http_keepalive, run_load, text_connect_loop, text_echo
from support.ops import instances

__all__ = ["instances"]

RETRY_APP = """
import os
import time

from geworker import Server

server = Server(f"text://127.0.0.1:{os.environ['PORT']}", name="echo")
server.listen(f"http://127.0.0.1:{os.environ['HTTP_PORT']}")
HERE = os.path.dirname(os.path.abspath(__file__))
DOWN, SLOW = os.path.join(HERE, "database-down"), os.path.join(HERE, "slow-start")

@server.on_worker_start
def connect_database(worker):
    if os.path.exists(SLOW):
        time.sleep(float(open(SLOW).read()))
    if os.path.exists(DOWN):
        raise RuntimeError("database down")

@server.on_message
def echo(conn, message):
    if hasattr(message, "method"):  # HTTP: answer the path
        conn.send(message.path)
    elif message == "pid":
        conn.send(str(os.getpid()))
    else:
        conn.send(message)
"""

FAILURE = "on_worker_start raised RuntimeError: database down"


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


def _watch_failures(inst, until, attempts: dict, timeout: float = 60) -> dict:
    """Poll ``status --json`` until ``until(data)``; keep each failed attempt's time.

    ``attempts`` maps (index, attempt) to the time the worker failed.
    """
    def seen():
        data = inst.status()
        for f in data["boot_failures"]:
            attempts.setdefault((f["index"], f["attempt"]), f["time"])
        return data if until(data) else None

    return wait_until(seen, timeout, interval=0.2, what="boot failures")


def _intervals(attempts: dict) -> dict[int, list[float]]:
    """Seconds between one failed attempt and the next, per worker index."""
    by_index = defaultdict(dict)
    for (index, attempt), t in attempts.items():
        by_index[index][attempt] = t
    return {index: [round(times[a + 1] - times[a], 2) for a in sorted(times) if a + 1 in times]
            for index, times in sorted(by_index.items())}


# The first failed attempt of each worker index logs its traceback, by design
# (the test also counts them).
@pytest.mark.allow_traceback("RuntimeError: database down")
@pytest.mark.timeout(240)
def test_reload_whose_new_workers_fail_keeps_serving_until_they_boot(instances):
    inst, old = _start(instances)
    master = inst.master_pid
    down = inst.cwd / "database-down"
    http_port = int(inst.env["HTTP_PORT"])
    clients = [(text_echo, inst.port, 3), (text_connect_loop, inst.port, 2),
               (http_keepalive, http_port, 2)]
    attempts: dict = {}
    answered: set[int] = set()
    with run_load(clients, max_seconds=200) as stats:
        time.sleep(0.5)
        down.touch()
        reload = inst.cli("reload")
        assert reload.returncode == 0, reload.stderr  # the import check cannot see this
        hup = time.monotonic()
        probe = LineClient(inst.port)  # a keep-alive client on an old worker

        def fourth_attempts(data) -> bool:
            answered.add(int(probe.request("pid")))
            assert pid_alive(master)
            failing = data["boot_failures"]
            return len(failing) == 2 and all(f["attempt"] >= 4 for f in failing)

        data = _watch_failures(inst, fourth_attempts, attempts)
        failed_for = time.monotonic() - hup
        states = {w["pid"]: w["state"] for w in data["workers"]}
        assert all(states.get(pid) == "holding" for pid in old), states
        assert data["master"]["boot_failures"]  # recorded by the master
        text = inst.cli("status").stdout
        assert re.search(rf"reload failed: {FAILURE} \(2 workers, attempt [45], "
                         r"(next in \d+ s|retrying now)\)", text), text
        down.unlink()
        removed = time.monotonic()
        new = inst.wait_workers(2, exclude=set(old), timeout=60)
        recovered_after = time.monotonic() - removed
        probe.close()
        time.sleep(0.5)
    summary = stats.summary()
    intervals = _intervals(attempts)
    log = inst.log()
    held = [float(s) for s in re.findall(r"held for ([\d.]+) s", log)]
    print(f"\nfailing for {failed_for:.1f} s (4 attempts per worker), new generation serving "
          f"{recovered_after:.1f} s after the fix; old workers held {held} s; retry intervals "
          f"{intervals}; load: {summary}")
    assert summary["errors"] == 0, summary  # no refused connection, no wrong answer
    assert answered and answered <= set(old)  # the old workers kept answering
    assert summary["ok"]["text_echo"] > 100 and summary["ok"]["http"] > 100
    assert summary["ok"]["text_connect"] > 20
    for gaps in intervals.values():  # back-off: 1, 2, 4 s (plus a boot each)
        assert gaps[0] >= 1.0 and gaps[1] >= 2.0 and gaps[2] >= 4.0, intervals
        assert gaps[2] > gaps[0], intervals
    assert inst.master_pid == master  # the master never exited
    assert len(held) == 2 and min(held) >= failed_for
    after = inst.status()
    assert sorted(w["pid"] for w in after["workers"]) == new
    assert after["boot_failures"] == []
    assert "reload failed" not in inst.cli("status").stdout
    exits = after["master"]["exits"]
    assert exits["normal"] == 2 and exits["boot failed"] >= 8, exits
    assert set(exits) == {"normal", "boot failed"}
    failures = re.findall(rf"failed to boot: {FAILURE} \(attempt (\d+), next in (\d+) s\)", log)
    assert len(failures) == exits["boot failed"]  # one line per attempt, with its reason
    assert traceback_ends(log) == ["RuntimeError: database down"] * 2  # attempt 1 of each worker
    assert "Worker failed to boot" not in log and "Shutting down" not in log


@pytest.mark.allow_traceback("RuntimeError: database down")  # attempt 1 logs its traceback
@pytest.mark.timeout(120)
def test_a_worker_replacing_a_dead_one_retries_its_boot(instances):
    inst, workers = _start(instances)
    master = inst.master_pid
    down = inst.cwd / "database-down"
    victim, survivor = workers
    down.touch()
    os.kill(victim, signal.SIGKILL)
    attempts: dict = {}
    data = _watch_failures(
        inst, lambda d: any(f["attempt"] >= 2 for f in d["boot_failures"]), attempts)
    assert [w["pid"] for w in data["workers"] if w["state"] == "idle"] == [survivor]
    assert int(LineClient(inst.port).request("pid")) == survivor
    text = inst.cli("status").stdout
    assert re.search(rf"worker boot failed: {FAILURE} \(attempt [23], ", text), text
    down.unlink()
    new = inst.wait_workers(2, exclude={victim}, timeout=30)
    assert survivor in new and inst.master_pid == master
    exits = inst.status()["master"]["exits"]
    assert exits["killed by SIGKILL"] == 1 and exits["boot failed"] >= 2, exits
    print(f"\nretry intervals {_intervals(attempts)}")
    assert traceback_ends(inst.log()) == ["RuntimeError: database down"]


@pytest.mark.allow_traceback("RuntimeError: database down")  # attempt 1 of each new worker
@pytest.mark.timeout(120)
def test_graceful_stop_during_a_failing_reload_drains_the_old_workers(instances):
    inst, old = _start(instances)
    master = inst.master_pid
    (inst.cwd / "database-down").touch()
    assert inst.cli("reload").returncode == 0
    _watch_failures(inst, lambda d: len(d["boot_failures"]) == 2, {})
    clients = [LineClient(inst.port) for _ in range(4)]
    for c in clients:
        assert int(c.request("pid")) in old
    t0 = time.monotonic()
    result = inst.cli("stop", "-g")
    stopped_after = time.monotonic() - t0
    print(f"\ngraceful stop during a failing reload took {stopped_after:.1f} s")
    assert result.returncode == 0, result.stderr
    assert not pid_alive(master)
    for c in clients:  # drained: closed, not reset
        assert c.file.readline() == b""
    log = inst.log()
    for pid in old:
        assert f"<Worker {pid}> stopping, draining" in log
    assert "graceful_timeout" not in log  # nothing was left to drop
