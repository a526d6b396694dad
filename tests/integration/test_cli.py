"""The ``geworker`` command against real gunicorn instances (started with ``start -d``)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading

import pytest

from conftest import ROOT, LineClient, check_server_log, free_port, pid_alive, wait_until
from support.ops import ECHO_APP, instances, run_cli, wait_pid_gone

__all__ = ["instances"]  # the fixture, imported for pytest


def test_commands_not_running(tmp_path):
    for command in (["status"], ["stop"], ["reload"], ["connections"], ["status", "app:server"]):
        result = run_cli(tmp_path, *command)
        assert result.returncode == 3, (command, result)
        assert "not running" in result.stderr


def test_start_status_connections_reload_stop(instances):
    inst = instances(port=free_port())
    result = inst.start("-w", "2")
    assert result.returncode == 0, result.stderr + inst.log()
    assert "started in daemon mode" in result.stdout
    master = inst.master_pid
    assert master is not None

    again = inst.start("-w", "2")
    assert again.returncode == 4
    assert f"already running (pid {master}" in again.stderr

    workers = inst.wait_workers(2)
    client = LineClient(inst.port)
    assert client.request("hello") == "hello"
    serving = int(client.request("pid"))
    assert serving in workers

    # snapshots are refreshed on the heartbeat, about once a second
    data = wait_until(lambda: (d := inst.status())["summary"]["messages"] >= 2 and d, 5,
                      what="message counts")
    assert data["master"]["pid"] == master
    assert data["master"]["listeners"][0]["url"] == f"text://127.0.0.1:{inst.port}"
    assert data["summary"]["processes"] == 2
    assert data["summary"]["connections"] == 1
    assert data["summary"]["timers"] == 2  # one per worker (on_worker_start)
    text = inst.cli("status")
    assert text.returncode == 0
    assert "----GLOBAL STATUS----" in text.stdout and "----PROCESS STATUS----" in text.stdout

    result = inst.cli("connections", "--json")
    assert result.returncode == 0, result.stderr
    conns = json.loads(result.stdout)
    assert conns["missing"] == []
    [row] = conns["connections"]
    assert row["pid"] == serving
    assert row["transport"] == "tcp" and row["protocol"] == "TextProtocol"
    assert row["local"] == f"127.0.0.1:{inst.port}"
    assert row["remote"] == f"127.0.0.1:{client.sock.getsockname()[1]}"
    assert row["bytes_read"] == len("hello\npid\n")
    assert row["send_queue"] == 0 and row["state"] == "ESTABLISHED"
    table = inst.cli("connections")
    assert table.stdout.splitlines()[0] == \
        f"instance {inst.run_dir.name} (run dir {inst.run_dir}, master pid {master})"
    assert table.stdout.splitlines()[1].split() == [
        "pid", "cid", "trans", "protocol", "local", "remote", "bytes_r", "bytes_w", "send_q",
        "state", "age"]

    result = inst.cli("reload")
    assert result.returncode == 0, result.stderr
    assert "reload #1" in result.stdout
    new_workers = inst.wait_workers(2, exclude=set(workers))
    assert client.file.readline() == b""  # the idle connection was closed by the drain
    for pid in workers:
        wait_pid_gone(pid)
    data = inst.status()
    assert data["master"]["reloads"] == 1
    assert data["master"]["exits"] == {"normal": 2}
    assert sorted(w["pid"] for w in data["workers"]) == new_workers
    snapshots = sorted(p.name for p in (inst.run_dir / "workers").glob("*[0-9].json"))
    assert snapshots == sorted(f"{p}.json" for p in new_workers)  # old ones removed

    result = inst.cli("stop")
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    assert not pid_alive(master)
    assert not any((inst.run_dir / "workers").glob("*.json"))
    result = inst.cli("stop")
    assert result.returncode == 3 and "is not running" in result.stderr


def test_two_instances_in_different_directories(instances):
    a = instances(port=free_port(), subdir="a")
    b = instances(port=free_port(), subdir="b")
    assert a.start("-w", "1").returncode == 0, a.log()
    assert b.start("-w", "1").returncode == 0, b.log()
    assert a.master_pid != b.master_pid
    assert a.status()["master"]["pid"] == a.master_pid
    assert b.status()["master"]["pid"] == b.master_pid
    ctl_a = a.status()["master"]["control_socket"]
    assert ctl_a.startswith(str(a.run_dir)) and os.path.exists(ctl_a)

    b_master = b.master_pid
    assert a.cli("stop").returncode == 0
    assert b.master_pid == b_master  # untouched
    assert b.status()["master"]["pid"] == b_master
    assert LineClient(b.port).request("still b") == "still b"
    assert os.path.exists(b.status()["master"]["control_socket"])
    assert a.cli("status").returncode == 3


def test_graceful_stop_waits_for_in_flight_messages(instances):
    inst = instances(port=free_port())
    assert inst.start("-w", "1").returncode == 0, inst.log()
    inst.wait_workers(1)
    client = LineClient(inst.port, timeout=10)
    client.send("sleep 1.5")
    wait_until(lambda: inst.status()["summary"]["messages"] >= 1, 5, what="message received")
    result = inst.cli("stop", "-g")
    assert result.returncode == 0, result.stderr
    assert "gracefully" in result.stdout
    assert client.recv() == "slept"  # answered before the worker left


def test_quick_stop_and_stop_failed_message(instances):
    inst = instances(port=free_port())
    assert inst.start("-w", "1").returncode == 0, inst.log()
    master = inst.master_pid
    os.kill(master, signal.SIGSTOP)  # a master that cannot react
    try:
        result = inst.cli("stop", "--wait", "1")
        assert result.returncode == 1
        assert f"stop failed after 1 s: pid {master} is still running" in result.stderr
    finally:
        os.kill(master, signal.SIGCONT)
    wait_pid_gone(master)  # the QUIT sent earlier is handled once it runs again


def test_restart_reuses_the_start_options(instances):
    inst = instances(port=free_port())
    assert inst.start("-w", "2").returncode == 0, inst.log()
    old_master = inst.master_pid
    result = inst.cli("restart")  # recorded options, daemon mode included
    assert result.returncode == 0, result.stderr + inst.log()
    assert "stopped" in result.stdout and "started in daemon mode" in result.stdout
    assert inst.master_pid not in (None, old_master)
    assert len(inst.wait_workers(2)) == 2
    assert LineClient(inst.port).request("back") == "back"


def test_safe_reload_refuses_a_broken_app_and_keeps_serving(instances):
    inst = instances(port=free_port())
    assert inst.start("-w", "2").returncode == 0, inst.log()
    workers = inst.wait_workers(2)
    client = LineClient(inst.port)
    assert client.request("before") == "before"
    app = inst.cwd / "app.py"
    good = app.read_text()

    app.write_text(good + "\ndef broken(:\n")
    result = inst.cli("reload")
    assert result.returncode == 1
    assert "reload refused, nothing was sent" in result.stderr
    assert "SyntaxError" in result.stderr

    app.write_text(good.replace("name=\"echo\")", "name=\"echo\")\n"
                                "server.listen('text://127.0.0.1:1')"))
    result = inst.cli("reload")
    assert result.returncode == 1
    assert "declares listeners" in result.stderr and "geworker restart" in result.stderr

    assert inst.status()["master"]["reloads"] == 0
    assert inst.worker_pids() == workers
    assert client.request("after") == "after"  # the old workers never stopped
    app.write_text(good)
    assert inst.cli("reload").returncode == 0


def test_foreground_start_and_stop(tmp_path):
    port = free_port()
    (tmp_path / "app.py").write_text(ECHO_APP)
    env = dict(os.environ, PORT=str(port), PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    env.pop("GEWORKER_RUN_DIR", None)
    log = open(tmp_path / "fg.log", "wb")  # noqa: SIM115 (closed in finally)
    proc = subprocess.Popen([sys.executable, "-m", "geworker.ops.cli", "start", "app:server",
                             "-w", "1"], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(lambda: run_cli(tmp_path, "status", env={"PORT": str(port)}).returncode == 0,
                   20, interval=0.2, what="foreground instance")
        assert LineClient(port).request("fg") == "fg"
        [pidfile] = tmp_path.glob(".geworker/app-server-*/gunicorn.pid")
        assert pidfile.read_text().strip() == str(proc.pid)
        result = run_cli(tmp_path, "stop", "-g", env={"PORT": str(port)})
        assert result.returncode == 0, result.stderr
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log.close()
    check_server_log((tmp_path / "fg.log").read_text(errors="replace"), "geworker start")


def test_status_live_refresh_shows_qps(instances):
    inst = instances(port=free_port())
    assert inst.start("-w", "1").returncode == 0, inst.log()
    inst.wait_workers(1)
    stop = threading.Event()

    def load():
        c = LineClient(inst.port)
        while not stop.is_set():
            c.request("x")
        c.close()

    t = threading.Thread(target=load, daemon=True)
    t.start()
    try:
        result = inst.cli("status", "-d", "--json", "--iterations", "2")
    finally:
        stop.set()
        t.join(timeout=5)
    assert result.returncode == 0, result.stderr
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert second["workers"][0]["qps"] > 0
    assert second["time"] - first["time"] >= 0.9


# the first start's on_worker_start raises, with its traceback
@pytest.mark.allow_traceback('RuntimeError: cannot start on purpose')
def test_start_d_reports_a_broken_app(instances):
    inst = instances(source=ECHO_APP + "\nraise RuntimeError('cannot start on purpose')\n",
                     port=free_port())
    result = inst.start("-w", "1")
    assert result.returncode == 1
    assert "did not start" in result.stderr
    assert "cannot start on purpose" in result.stderr
    assert inst.master_pid is None


def test_start_d_reports_a_port_in_use(instances):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        inst = instances(port=busy.getsockname()[1])
        result = inst.start("-w", "1")
    assert result.returncode == 1
    assert "Address already in use" in result.stderr or "in use" in result.stderr


def test_several_instances_need_a_name(tmp_path):
    for app in ("a-server", "b-server"):
        run_dir = tmp_path / ".geworker" / app
        run_dir.mkdir(parents=True)
        (run_dir / "cli.json").write_text(json.dumps({"app": app.replace("-", ":")}))
    result = run_cli(tmp_path, "status")
    assert result.returncode == 2
    base = tmp_path / ".geworker"
    assert f"2 instances under {base}; pick one with --run-dir" in result.stderr
    assert f"{base / 'a-server'}  not running" in result.stderr
    assert f"{base / 'b-server'}  not running" in result.stderr
    result = run_cli(tmp_path, "status", "a:server")
    assert result.returncode == 3 and "a:server is not running" in result.stderr
