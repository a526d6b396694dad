"""Messaging across the workers of one instance (the embedded backend), with real gunicorn.

Clients are spread over the workers (asserted), and every send and query is
made from each worker in turn: whichever worker calls, the answer is the
instance's.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import websocket

from conftest import ROOT, free_port, wait_until
from support.messaging_clients import Client, assert_sends_reach, one_per_worker, spread
from support.ops import run_cli

APP = (ROOT / "tests" / "apps" / "messaging_app.py").read_text()


def start(gunicorn, workers: int, **env: str):
    http_port, text_port = free_port(), free_port()
    g = gunicorn(APP, workers=workers, env={"HTTP_PORT": str(http_port),
                                            "TEXT_PORT": str(text_port), **env})
    return g, http_port, text_port


def run_dir(tmp_path: Path) -> Path:
    (found,) = [p for p in (tmp_path / ".geworker").iterdir() if (p / "master.json").exists()]
    return found


@pytest.mark.timeout(120)
def test_every_send_and_query_works_from_every_worker(gunicorn):
    _, _, port = start(gunicorn, workers=4)
    clients = spread(port, 16, 4)
    assert len({c.pid for c in clients}) == 4
    for i, c in enumerate(clients):
        assert c.ask(f"uid u{i}") == "ok"
        assert c.ask(f"join g{i % 2}") == "ok"
        assert c.ask(f'session name "n{i}"') == "ok"
    callers = one_per_worker(clients)
    n = len(clients)
    for caller in callers:
        assert_sends_reach(caller, clients)  # whichever worker each sits on
        # exclude names a client on any worker.
        target = next(c for c in clients if c.pid != caller.pid and clients.index(c) % 2)
        assert caller.ask(f"to_group_except g1 {target.cid} without") == "ok True"
        for c in clients:
            if clients.index(c) % 2 == 1 and c is not target:
                assert c.next_push() == "without"
        # Queries answer for the whole instance.
        assert caller.query("online_count") == n
        assert caller.query("group_size g0") == (n + 1) // 2
        assert caller.query("uids_in_group g1") == sorted(f"u{i}" for i in range(1, n, 2))
        members = caller.query("group_members g0")
        assert members == {c.cid: {"name": f"n{i}"} for i, c in enumerate(clients) if i % 2 == 0}
        assert caller.query("is_uid_online u3") is True
        assert caller.query("is_uid_online nobody") is False
        assert caller.query(f"client_ids_of_uid u{n - 1}") == [clients[-1].cid]
        assert caller.query(f"is_online {clients[-1].cid}") is True
        assert caller.query(f"uid_of {clients[2].cid}") == "u2"
        assert caller.query(f"session_of {clients[2].cid}") == {"name": "n2"}
        assert set(caller.query("groups")) == {"g0", "g1"}
        assert caller.query("uids") == sorted(f"u{i}" for i in range(n))
    for c in clients:
        assert c.nothing_pushed(0.05)
    # send_to_all with exclude, from one worker, reaches every other connection once.
    assert callers[0].ask("to_all everyone") == "ok True"
    for c in clients:
        if c is not callers[0]:
            assert c.next_push() == "everyone"
    assert callers[0].nothing_pushed()


@pytest.mark.timeout(60)
def test_status_shows_the_backend_and_its_counts(gunicorn, tmp_path):
    _, _, port = start(gunicorn, workers=2)
    a, b = one_per_worker(spread(port, 2, 2))
    a.ask("uid ann")
    b.ask("join room")
    assert a.ask(f"to_client {b.cid} hi") == "ok True"
    assert b.next_push() == "hi"
    assert a.query("group_size room") == 1

    def summary():
        out = run_cli(tmp_path, "status", "--json", "--run-dir", str(run_dir(tmp_path)))
        assert out.returncode == 0, out.stderr
        m = json.loads(out.stdout)["summary"]["messaging"]
        return m if m["relayed_in"] >= 1 and m["uids"] == 1 else None

    m = wait_until(summary, 10, interval=0.2, what="messaging counts in the snapshots")
    assert m["kind"] == "local" and m["connected"] == m["workers"] == 2
    assert m["groups"] == 1 and m["relayed_out"] >= 1 and m["dropped"] == 0
    # A message for a connection that closed meanwhile is dropped and counted where it lands.
    gone = b.cid
    b.close()
    wait_until(lambda: a.query(f"is_online {gone}") is False, 5, what="b closed")
    assert a.ask(f"to_client {gone} too late") == "ok True"  # handed to b's worker
    wait_until(lambda: (out := run_cli(tmp_path, "status", "--json", "--run-dir",
                                      str(run_dir(tmp_path)))).returncode == 0
               and json.loads(out.stdout)["summary"]["messaging"]["dropped"] == 1,
               10, interval=0.2, what="the drop counted")
    text = run_cli(tmp_path, "status", "--run-dir", str(run_dir(tmp_path))).stdout
    assert "----MESSAGING----" in text and "backend: local   connected: 2/2 workers" in text


@pytest.mark.timeout(120)
def test_routed_changes_and_close_from_another_worker(gunicorn):
    _, _, port = start(gunicorn, workers=4)
    clients = spread(port, 8, 4)
    a, b = one_per_worker(clients)[:2]
    assert a.pid != b.pid
    assert a.ask(f"bind_other {b.cid} remote-uid") == "ok True"
    assert a.ask(f"join_other {b.cid} remote-group") == "ok True"
    wait_until(lambda: a.query("is_uid_online remote-uid"), 5, what="routed bind")
    assert a.query("uids_in_group remote-group") == ["remote-uid"]
    assert a.ask("ungroup remote-group") == "ok"
    wait_until(lambda: a.query("group_size remote-group") == 0, 5, what="ungroup")
    # Unknown targets: False or empty answers, never an exception.
    assert a.ask("to_client 0123456789abff nobody") == "ok False"
    assert a.ask("to_client not-an-id nobody") == "ok False"
    assert a.query("is_online 0123456789abff") is False
    assert a.query("group_members nothing") == {}
    assert a.ask("to_uid nobody hello") == "ok True"  # handed on; nobody has it
    # close_client reaches the other worker: b gets its last message, then EOF.
    assert a.ask(f"close {b.cid} bye") == "ok True"
    assert b.next_push() == "bye"
    b.sock.settimeout(5)
    assert b.sock.recv(100) == b""
    wait_until(lambda: a.query(f"is_online {b.cid}") is False, 5, what="closed client offline")


@pytest.mark.timeout(60)
def test_bad_input_gets_clear_errors(gunicorn):
    _, _, port = start(gunicorn, workers=2)
    c = Client(port)
    assert c.ask("uid " + "u" * 257).startswith("error LocalProtocolError: a uid has 1 to 256")
    assert c.ask('session k {"bad": NaN}') == "ok"  # NaN is JSON to Python's json
    reply = c.ask("big someone 4194305")
    assert reply.startswith("error LocalProtocolError: a message is at most 4194304 bytes")
    assert c.ask("big someone 1048576") == "ok True"  # 1 MiB goes
    reply = c.ask("joinmany 300")
    assert reply == "error LocalProtocolError: a connection is in at most 256 groups at once"
    assert c.query("group_size flood255") == 1
    assert c.query("group_size flood256") == 0
    # The worker still serves.
    assert c.request("pid") == str(c.pid)


@pytest.mark.timeout(90)
def test_broadcast_skips_plain_http_connections(gunicorn):
    _, http_port, _ = start(gunicorn, workers=3)
    page = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    page.request("GET", "/")
    assert page.getresponse().read() == b"<html><body>chat</body></html>"  # keep-alive stays open
    sockets, pids = [], set()
    for _ in range(60):
        ws = websocket.create_connection(f"ws://127.0.0.1:{http_port}/ws", timeout=5)
        ws.send("pid")
        pids.add(ws.recv())
        sockets.append(ws)
        if len(pids) == 3 and len(sockets) >= 9:
            break
    assert len(pids) == 3
    sockets[0].send("bcast hello all")
    for ws in sockets:
        assert ws.recv() == "hello all"
    # An HTTP request that broadcasts gets its own answer; the WebSockets get the text.
    other = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
    other.request("GET", "/broadcast")
    assert other.getresponse().read() == b"broadcast sent"
    for ws in sockets:
        assert ws.recv() == "from http"
    # The keep-alive connection that loaded the page is untouched and still answers.
    page.request("GET", "/")
    response = page.getresponse()
    assert response.status == 200 and response.read() == b"<html><body>chat</body></html>"
    for ws in sockets:
        ws.close()


@pytest.mark.timeout(120)
def test_killed_worker_drops_out_and_new_workers_take_part(gunicorn):
    g, _, port = start(gunicorn, workers=3)
    clients = spread(port, 9, 3)
    for i, c in enumerate(clients):
        c.ask(f"uid u{i}")
    victim = clients[0]
    survivor = next(c for c in clients if c.pid != victim.pid)
    on_victim = [f"u{i}" for i, c in enumerate(clients) if c.pid == victim.pid]
    os.kill(victim.pid, signal.SIGKILL)
    t0 = time.monotonic()
    wait_until(lambda: not any(survivor.query(f"is_uid_online {u}") for u in on_victim), 5,
               what="the killed worker's uids offline")
    assert time.monotonic() - t0 < 1.0
    remaining = [c for c in clients if c.pid != victim.pid]
    assert survivor.query("online_count") == len(remaining)
    # TTIN: a fourth worker takes part (its connections are reachable and counted).
    g.signal(signal.SIGTTIN)
    g.wait_ready(g.ready_count() + 2)  # the respawned worker and the TTIN one
    known = {c.pid for c in remaining}
    newcomers = []
    for _ in range(80):
        c = Client(port)
        if c.pid not in known:
            newcomers.append(c)
            known.add(c.pid)
        if len(newcomers) == 2:
            break
    assert len(newcomers) == 2
    for c in newcomers:
        c.ask(f"uid new{c.pid}")
        assert survivor.ask(f"to_uid new{c.pid} welcome") == "ok True"
        assert c.next_push() == "welcome"
        assert survivor.query(f"is_uid_online new{c.pid}") is True


@pytest.mark.timeout(120)
def test_clients_that_bind_again_after_a_reload_are_reachable(gunicorn):
    g, _, port = start(gunicorn, workers=2)
    clients = spread(port, 4, 2)
    for i, c in enumerate(clients):
        c.ask(f"uid u{i}")
    old = {c.pid for c in clients}
    g.signal(signal.SIGHUP)
    for c in clients:  # the old workers close their connections as they drain
        c.sock.settimeout(15)
        while c.sock.recv(65536):
            pass
    fresh = spread(port, 4, 2)
    assert not {c.pid for c in fresh} & old
    for i, c in enumerate(fresh):
        c.ask(f"uid u{i}")
    for i, c in enumerate(fresh):
        assert fresh[(i + 1) % 4].ask(f"to_uid u{i} back") == "ok True"
        assert c.next_push() == "back"
    assert fresh[0].query("uids") == ["u0", "u1", "u2", "u3"]


@pytest.mark.timeout(90)
def test_a_worker_that_does_not_answer_is_left_out_within_the_timeout(gunicorn):
    _, _, port = start(gunicorn, workers=2)
    a, b = one_per_worker(spread(port, 2, 2))
    a.ask("uid here")
    b.ask("uid there")
    os.kill(b.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        assert a.query("uids") == ["here"]  # b is stopped: its share is missing
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 2.5, elapsed
    finally:
        os.kill(b.pid, signal.SIGCONT)
    assert a.query("uids") == ["here", "there"]


OUTSIDE = """
from geworker import Messenger

with Messenger(app="app:server") as m:  # the instance started in this directory
    print(m.send_to_uid("ann", "from a script"))
    print(m.online_count(), m.is_uid_online("ann"), m.client_ids_of_uid("ann") != [])
"""


@pytest.mark.timeout(90)
def test_a_plain_script_finds_the_instance_sends_and_queries(gunicorn, tmp_path):
    _, _, port = start(gunicorn, workers=2)
    clients = spread(port, 2, 2)
    clients[1].ask("uid ann")
    out = subprocess.run([sys.executable, "-c", OUTSIDE], cwd=tmp_path,
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", str(len(clients)), "True", "True"]
    assert clients[1].next_push() == "from a script"


@pytest.mark.timeout(90)
def test_the_guides_flask_route_pushes_to_a_uid(gunicorn, tmp_path):
    pytest.importorskip("flask")
    from integration.test_docs import python_blocks

    _, _, port = start(gunicorn, workers=2)
    clients = spread(port, 2, 2)
    clients[-1].ask("uid ann")
    flask_block = python_blocks("docs/messaging.md")[1].replace("chat:server", "app:server")
    script = flask_block + (
        "\nreply = api.test_client().post('/push', json={'uid': 'ann', 'message': 'pushed'})"
        "\nprint(reply.get_json())\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "{'online': True, 'sent': True}"
    assert clients[-1].next_push() == "pushed"


INJECT = """
import os, socket, sys
os.setgid(65534); os.setuid(65534)
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(path)
except OSError as exc:
    print("refused", exc.errno)
    sys.exit(0)
s.settimeout(3)
try:
    s.sendall(bytes.fromhex(sys.argv[2]))
    print("answered" if s.recv(100) else "closed")
except (BrokenPipeError, ConnectionResetError):
    print("closed")
except TimeoutError:
    print("no answer")
"""


@pytest.fixture
def open_run_dir():
    """A run directory that every user can reach (the test then opens up the bus too)."""
    base = Path(tempfile.mkdtemp(prefix="geworker-open-"))
    base.chmod(0o755)
    yield base / "run"
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(90)
@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another uid needs root")
def test_another_user_cannot_inject_or_query(gunicorn, open_run_dir):
    from geworker.messaging.wire import Op, encode

    g, _, port = start(gunicorn, workers=2, GEWORKER_RUN_DIR=str(open_run_dir))
    clients = spread(port, 2, 2)
    bus = open_run_dir / "bus"
    assert oct(bus.stat().st_mode & 0o777) == "0o700"
    sockets = sorted(bus.glob("*.sock"))
    assert len(sockets) == 2 and all(oct(s.stat().st_mode & 0o777) == "0o600" for s in sockets)
    inject = encode(Op.ALL, [None, []], "INJECTED") + encode(Op.QUERY, [1, "uids", []])

    def attempt(path: Path) -> str:
        out = subprocess.run([sys.executable, "-c", INJECT, str(path), inject.hex()],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    # The permissions stop another user at the directory.
    assert attempt(sockets[0]) == "refused 13"
    # Even with the permissions opened up, the peer credentials are checked.
    bus.chmod(0o777)
    for s in sockets:
        s.chmod(0o777)
    assert attempt(sockets[0]) == "closed"
    for c in clients:
        assert c.nothing_pushed()
    assert "refused a messaging connection from uid 65534" in g.log()
