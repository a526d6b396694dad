"""Status snapshots and reports: unit tests, the text format parsed back, busy workers."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from geworker import rundir
from geworker.master import hooks, privileges
from geworker.ops import report as ops_report
from geworker.worker.snapshot import SnapshotWriter

from conftest import LineClient, free_port, wait_until
from support.ops import instances

__all__ = ["instances"]


def parse_status(text: str) -> dict:
    """Parse ``geworker status`` text: global fields, boot failures, exit table, process rows.

    The command's first line, naming the instance, is skipped when present.
    """
    lines = text.splitlines()
    if lines[0].startswith("instance "):
        lines = lines[1:]
    assert lines[0] == "----GLOBAL STATUS----"
    versions = dict(part.split("/", 1) for part in lines[1].split())
    fields = {}
    for line in lines[2:5]:
        for part in re.split(r" {3}", line):
            key, _, value = part.partition(": ")
            fields[key.strip()] = value.strip()
    at = 5
    failures = []
    while re.match(r"(reload|worker boot) failed: ", lines[at]):
        failures.append(lines[at])
        at += 1
    split = lines.index("----PROCESS STATUS----")
    exit_header, *exit_rows = [re.split(r" {2,}", line) for line in lines[at:split]]
    assert exit_header == ["exit_status", "exit_count"]
    end = lines.index("----MESSAGING----") if "----MESSAGING----" in lines else len(lines)
    header, *rows = [re.split(r" {2,}", line) for line in lines[split + 1:end]]
    assert header == ops_report.PROCESS_COLUMNS
    processes = [dict(zip(header, row, strict=True)) for row in rows]
    assert processes[-1]["pid"] == "Summary"
    return {"versions": versions, "fields": fields, "boot_failures": failures,
            "exits": {k: int(v) for k, v in exit_rows}, "processes": processes[:-1],
            "summary": processes[-1]}


def snapshot(pid: int, **changes) -> dict:
    base = {"pid": pid, "index": 0, "generation": 0, "name": "chat room",
            "listeners": ["text://0.0.0.0:2345", "frame://0.0.0.0:2346"],
            "started": 1000.0, "heartbeat": 1099.5, "interval": 1.0, "rss": 3 * 1024 * 1024,
            "connections": 7, "timers": 2, "qps": 12.5, "state": "idle",
            "counters": {"messages_in": 31, "send_failures": 1}}
    base.update(changes)
    return base


def sample_status() -> dict:
    workers = [snapshot(101), snapshot(102, state="busy", connections=3, rss=1024 * 1024,
                                          qps=0.0), {"pid": 103, "state": "starting"}]
    return {"run_dir": "/srv/app/.geworker/app-server", "time": 1100.0,
            "master": {"pid": 100, "app": "app:server", "name": "chat room", "started": 1000.0,
                       "workers": 3, "reloads": 2,
                       "exits": {"normal": 4, "killed by SIGKILL": 1, "timeout": 1}},
            "uptime": 3725.0, "load_average": [0.5, 0.25, 0.1],
            "versions": {"geworker": "0.1.0", "gunicorn": "27.0.1", "gevent": "26.9.0",
                         "python": "3.11.7"},
            "workers": workers, "summary": ops_report._summary(workers)}


def test_status_text_format_parses_back():
    report = parse_status(ops_report.format_status(sample_status()))
    assert report["versions"] == {"geworker": "0.1.0", "gunicorn": "27.0.1",
                                  "gevent": "26.9.0", "Python": "3.11.7"}
    assert report["fields"]["uptime"] == "1h 2m 5s"
    assert report["fields"]["load average"] == "0.5, 0.25, 0.1"
    assert report["fields"]["workers"] == "3" and report["fields"]["processes"] == "3"
    assert report["fields"]["reloads"] == "2" and report["fields"]["server"] == "chat room"
    assert report["exits"] == {"killed by SIGKILL": 1, "normal": 4, "timeout": 1}
    first, busy, starting = report["processes"]
    assert first == {"pid": "101", "memory": "3.0M",
                     "listening": "text://0.0.0.0:2345,frame://0.0.0.0:2346",
                     "name": "chat room", "connections": "7", "send_fail": "1", "timers": "2",
                     "total_request": "31", "qps": "12.5", "status": "[idle]", "age": "1m 40s",
                     "heartbeat": "0.5s ago"}
    assert busy["status"] == "[busy]" and busy["memory"] == "1.0M"
    assert starting["status"] == "[starting]" and starting["memory"] == "-"
    assert report["summary"]["connections"] == "10"
    assert report["summary"]["total_request"] == "62"
    assert report["summary"]["memory"] == "4.0M"


def _failure(index: int, generation: int = 1, **changes) -> dict:
    entry = {"pid": 200 + index, "index": index, "generation": generation,
             "reason": "on_worker_start raised RuntimeError: database down", "attempt": 3,
             "retry_in": 4.0, "time": 1096.0, "retry_at": 1104.2, "since": 1090.0}
    entry.update(changes)
    return entry


def test_status_shows_the_workers_that_fail_to_boot():
    data = sample_status()
    data["master"]["boot_failures"] = {"0": _failure(0), "1": _failure(1, attempt=2,
                                                                        retry_at=1101.0)}
    data["boot_failures"] = ops_report.boot_failures(data["master"], data["workers"],
                                                     data["time"])
    assert [(f["index"], f["next_in"]) for f in data["boot_failures"]] == [(0, 4.2), (1, 1.0)]
    report = parse_status(ops_report.format_status(data))
    assert report["boot_failures"] == [
        "reload failed: on_worker_start raised RuntimeError: database down "
        "(2 workers, attempt 3, next in 1 s)"]
    assert report["exits"] == {"killed by SIGKILL": 1, "normal": 4, "timeout": 1}
    assert len(report["processes"]) == 3


def test_boot_failure_lines():
    lines = ops_report.format_boot_failures([
        {**_failure(0), "next_in": 4.0}, {**_failure(1, generation=0), "next_in": 0.2},
        {**_failure(2, reason="loading app:server raised ImportError: no module named db"),
         "next_in": 30.0}])
    assert lines == [
        "reload failed: on_worker_start raised RuntimeError: database down (attempt 3, "
        "next in 4 s)",
        "worker boot failed: on_worker_start raised RuntimeError: database down (attempt 3, "
        "retrying now)",
        "reload failed: loading app:server raised ImportError: no module named db (attempt 3, "
        "next in 30 s)"]
    assert ops_report.format_boot_failures([]) == []


def test_a_boot_failure_ends_once_a_worker_of_its_index_serves():
    master = {"boot_failures": {"0": _failure(0), "1": _failure(1)}}
    workers = [snapshot(301, index=0, generation=1), snapshot(302, index=1, generation=0),
               {"pid": 303, "state": "starting"}]
    failing = ops_report.boot_failures(master, workers, 1100.0)
    assert [f["index"] for f in failing] == [1]  # index 1 only has an old worker serving
    workers[1] = snapshot(302, index=1, generation=2)  # a newer reload's worker serves
    assert ops_report.boot_failures(master, workers, 1100.0) == []
    assert ops_report.boot_failures({}, workers, 1100.0) == []


def test_live_qps_overrides_snapshot_rate():
    text = ops_report.format_status(sample_status(), qps={101: 40.0, 102: 2.0})
    report = parse_status(text)
    assert [p["qps"] for p in report["processes"][:2]] == ["40.0", "2.0"]
    assert report["summary"]["qps"] == "42.0"


def test_connections_format():
    data = {"connections": [{"pid": 1, "id": 7, "transport": "tcp", "protocol": "TextProtocol",
                             "local": "127.0.0.1:2345", "remote": "127.0.0.1:50000",
                             "bytes_read": 10, "bytes_written": 20, "send_queue": 0,
                             "state": "ESTABLISHED", "age": 1.25}],
            "missing": [9]}
    lines = ops_report.format_connections(data).splitlines()
    assert re.split(r" {2,}", lines[1]) == ["1", "7", "tcp", "TextProtocol", "127.0.0.1:2345",
                                            "127.0.0.1:50000", "10", "20", "0", "ESTABLISHED",
                                            "1.2s"]
    assert lines[2] == "busy (no answer in time): 9"


@pytest.mark.parametrize(("raw", "aborted", "label"), [
    (0, False, "normal"),
    (1 << 8, False, "exit code 1"),
    (signal.SIGKILL, False, "killed by SIGKILL"),
    (signal.SIGSEGV, False, "killed by SIGSEGV"),
    (1 << 8, True, "timeout"),
    (75 << 8, False, "boot failed"),
    (None, False, "unknown"),
])
def test_classify_exit(raw, aborted, label):
    assert hooks.classify_exit(raw, aborted) == label


def test_durations_and_sizes():
    assert ops_report.format_duration(0) == "0s"
    assert ops_report.format_duration(93784) == "1d 2h 3m 4s"
    assert ops_report.format_bytes(512) == "512B"
    assert ops_report.format_bytes(1536) == "1.5K"
    assert ops_report.format_bytes(3 * 1024 ** 3) == "3.0G"


def test_write_json_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "x.json"
    rundir.write_json(path, {"a": 1})
    rundir.write_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
    with pytest.raises(TypeError):
        rundir.write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_privilege_problems(monkeypatch):
    cfg = SimpleNamespace(uid=65534, gid=65534)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    monkeypatch.setattr(os, "getegid", lambda: 1000)
    assert "--user 65534 needs the master to run as root" in privileges.privilege_problem(cfg)
    cfg = SimpleNamespace(uid=1000, gid=65534)
    assert "--group 65534 needs" in privileges.privilege_problem(cfg)
    assert privileges.privilege_problem(SimpleNamespace(uid=1000, gid=1000)) is None
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert privileges.privilege_problem(SimpleNamespace(uid=0, gid=0, chdir="/nonexistent")) is None


def test_privilege_problem_unreadable_app_dir(tmp_path):
    assert privileges._unreadable_by(tmp_path, os.geteuid() + 12345, 12345) is not None
    base = Path(tempfile.mkdtemp(prefix="geworker-perm-"))  # pytest's tmp is private
    request_cleanup = base
    os.chmod(base, 0o755)
    app_dir = base / "private" / "app"
    app_dir.mkdir(parents=True)
    os.chmod(app_dir.parent, 0o700)
    try:
        _check_unreadable(app_dir)
    finally:
        shutil.rmtree(request_cleanup)


def _check_unreadable(app_dir):
    uid = os.geteuid() + 12345  # someone else: neither owner nor group
    cfg = SimpleNamespace(uid=uid, gid=uid, chdir=str(app_dir))
    if os.geteuid() == 0:
        problem = privileges.privilege_problem(cfg)
        assert problem is not None and f"cannot read {app_dir.parent}" in problem
    assert privileges._unreadable_by(app_dir, uid, uid) == app_dir.parent
    os.chmod(app_dir.parent, 0o755)
    assert privileges._unreadable_by(app_dir, uid, uid) in (None, *app_dir.parents)
    assert privileges._unreadable_by(app_dir, os.geteuid(), os.getegid()) is None


def test_snapshot_writer_never_raises(tmp_path, monkeypatch):
    warnings = []
    log = SimpleNamespace(warning=lambda *a: warnings.append(a))
    worker = SimpleNamespace(log=log, cfg=SimpleNamespace(statsd_host=None), server=None,
                             alive=True, index=0, generation=0)
    monkeypatch.setattr(rundir, "_run_dir", tmp_path / "gone")
    writer = SnapshotWriter(worker, 1.0)
    writer.write()
    writer.write()
    assert len(warnings) == 1  # logged once, then quiet
    monkeypatch.setattr(rundir, "_run_dir", tmp_path)
    (tmp_path / "workers").mkdir()
    writer = SnapshotWriter(worker, 1.0)
    writer.write()
    snap = json.loads((tmp_path / "workers" / f"{os.getpid()}.json").read_text())
    assert snap["pid"] == os.getpid() and snap["state"] == "idle" and snap["rss"] > 0
    writer.remove()
    writer.write()  # after remove: nothing is written again
    assert not any((tmp_path / "workers").iterdir())


def test_busy_worker_shows_busy_not_missing(instances):
    inst = instances(port=free_port())
    assert inst.start("-w", "2", "--timeout", "60").returncode == 0, inst.log()
    inst.wait_workers(2)
    burner = LineClient(inst.port, timeout=20)
    busy_pid = int(burner.request("pid"))
    burner.send("burn 9")  # blocks that worker's hub: no heartbeat, no snapshot

    def busy_seen():
        workers = {w["pid"]: w for w in inst.status()["workers"]}
        return workers if workers.get(busy_pid, {}).get("state") == "busy" else None

    workers = wait_until(busy_seen, 10, interval=0.2, what="worker shown busy")
    assert len(workers) == 2
    assert workers[busy_pid]["busy_since"] <= time.time() - 2
    other = [w for pid, w in workers.items() if pid != busy_pid]
    assert other[0]["state"] == "idle"
    text = inst.cli("status").stdout
    row = next(p for p in parse_status(text)["processes"] if p["pid"] == str(busy_pid))
    assert row["status"] == "[busy]" and row["connections"] != "-"

    result = inst.cli("connections", "--json", "--wait", "1")
    assert json.loads(result.stdout)["missing"] == [busy_pid]
    assert burner.recv() == "burnt"
    wait_until(lambda: busy_seen() is None, 10, interval=0.2, what="worker idle again")
