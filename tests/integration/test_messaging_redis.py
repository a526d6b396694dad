"""The Redis backend with real redis-server processes and two real gunicorn instances.

Two instances on different ports share one Redis (or one three-master Redis
Cluster), as two machines would; clients sit on every worker of both, and
every send and query is checked from both sides. The outage tests kill,
restart and freeze the redis-server under a running instance.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import ROOT, Gunicorn, free_port, wait_until
from support.messaging_clients import Client, assert_sends_reach, one_per_worker, spread
from support.redis_servers import RedisCluster, RedisServer, TlsFiles, command, needs_redis

pytestmark = needs_redis

APP = (ROOT / "tests" / "apps" / "messaging_app.py").read_text()
OUTAGE_WARNING = "is unreachable"


def documented_acl(cluster: bool = False) -> list[str]:
    """The commands docs/messaging-redis.md says the backend's ACL user needs."""
    doc = (ROOT / "docs" / "messaging-redis.md").read_text()
    block = doc.split("```text\n", 1)[1].split("```", 1)[0]
    standalone, _, more = block.partition("# on a cluster")
    words = [w for w in (standalone + (more if cluster else "")).split() if w.startswith("+")]
    assert "+publish" in words and ("+spublish" in words) == cluster
    return words


class Instance:
    """One gunicorn instance of the messaging app (its own directory, ports and log)."""

    def __init__(self, tmp: Path, url: str, workers: int, env: dict[str, str],
                 connected: bool = True) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.http_port, self.port = free_port(), free_port()
        self.g = Gunicorn(tmp, APP, [], {"HTTP_PORT": str(self.http_port),
                                         "TEXT_PORT": str(self.port),
                                         "GEWORKER_MESSAGING": url, **env},
                          workers)
        self.g.wait_ready()
        # Every worker has written its liveness (its first presence sync) once it logs this.
        if connected:
            wait_until(lambda: self.g.log().count("messaging through Redis") >= workers, 20,
                       what=f"{workers} workers connected to Redis\n{self.g.log()}")

    def kill(self) -> None:
        """SIGKILL the master and every worker at once (a machine's processes dying)."""
        os.killpg(self.g.pid, signal.SIGKILL)
        self.g.proc.wait(timeout=10)

    def warnings_per_worker(self) -> Counter[int]:
        """How many outage warnings each worker pid logged."""
        return Counter(int(pid) for pid in re.findall(
            rf"\[(\d+)\] \[WARNING\] geworker: messaging: Redis at \S+ {OUTAGE_WARNING}",
            self.g.log()))


@pytest.fixture
def instances(tmp_path: Path) -> Iterator:
    """Factory: ``instances(url, workers=2)`` -> a started :class:`Instance`."""
    started: list[Instance] = []

    def start(url: str, workers: int = 2, connected: bool = True, **env: str) -> Instance:
        instance = Instance(tmp_path / f"instance{len(started)}", url, workers, env, connected)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        instance.g.stop()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def redis_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    cluster = RedisCluster(tmp_path / "cluster")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["standalone", "cluster"])
def redis_url(request, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh standalone Redis, then of a fresh three-master cluster."""
    if request.param == "standalone":
        server = RedisServer(tmp_path / "redis")
        yield server.url
        server.stop()
    else:
        cluster = RedisCluster(tmp_path / "cluster")
        yield cluster.url
        cluster.stop()


def offline_within(asker: Client, uids: list[str], timeout: float,
                   since: float | None = None) -> float:
    """Seconds from ``since`` until none of ``uids`` is online for ``asker``."""
    t0 = time.monotonic() if since is None else since
    wait_until(lambda: not any(asker.query(f"is_uid_online {u}") for u in uids), timeout,
               interval=0.05, what=f"{uids} offline")
    return time.monotonic() - t0


@pytest.mark.timeout(180)
def test_two_instances_share_one_redis(instances, redis_url):
    a, b = instances(redis_url), instances(redis_url)
    on_a, on_b = spread(a.port, 4, 2), spread(b.port, 4, 2)
    clients = on_a + on_b
    n = len(clients)
    for i, c in enumerate(clients):
        assert c.ask(f"uid u{i}") == "ok"
        assert c.ask(f"join g{i % 2}") == "ok"
        assert c.ask(f'session name "n{i}"') == "ok"
    callers = one_per_worker(on_a) + one_per_worker(on_b)
    assert len(callers) == 4
    # Presence reaches Redis a moment after the callback: wait until every worker sees all.
    for caller in callers:
        wait_until(lambda c=caller: c.query("online_count") == n, 10, what="online_count")
        wait_until(lambda c=caller: c.query("group_size g1") == n // 2, 10, what="group_size")
    for caller in callers:
        assert_sends_reach(caller, clients)  # whichever instance each sits on
        # Queries agree, whichever instance and worker asks.
        assert caller.query("online_count") == n
        assert caller.query("group_size g0") == n // 2
        assert caller.query("uids_in_group g1") == sorted(f"u{i}" for i in range(1, n, 2))
        members = caller.query("group_members g0")
        assert members == {c.cid: {"name": f"n{i}"} for i, c in enumerate(clients) if i % 2 == 0}
        assert caller.query("uids") == sorted(f"u{i}" for i in range(n))
        assert set(caller.query("groups")) == {"g0", "g1"}
        assert caller.query(f"client_ids_of_uid u{n - 1}") == [clients[-1].cid]
        assert caller.query(f"uid_of {clients[1].cid}") == "u1"
        assert caller.query(f"session_of {clients[6].cid}") == {"name": "n6"}
        assert caller.query(f"is_online {clients[5].cid}") is True
        assert caller.query("is_uid_online nobody") is False
    for c in clients:
        assert c.nothing_pushed(0.05)
    # send_to_all from one worker reaches every other connection of both instances once.
    assert callers[0].ask("to_all everyone") == "ok True"
    for c in clients:
        if c is not callers[0]:
            assert c.next_push() == "everyone"
    assert callers[0].nothing_pushed()
    # Routed changes reach the other instance: bind and join from A, for a client of B.
    target = on_b[0]
    assert on_a[0].ask(f"bind_other {target.cid} moved") == "ok True"
    assert on_a[0].ask(f"join_other {target.cid} g-remote") == "ok True"
    wait_until(lambda: on_a[0].query("uids_in_group g-remote") == ["moved"], 5,
               what="routed bind and join")
    assert on_a[0].ask("ungroup g-remote") == "ok"
    wait_until(lambda: on_a[0].query("group_size g-remote") == 0, 5, what="ungroup")
    assert on_a[0].ask("to_client 0123456789abff nobody") == "ok True"  # handed to Redis
    describe = on_a[0].describe()
    assert describe["kind"] == "redis" and describe["connected"] is True
    assert describe["url"] == redis_url

    # SIGKILL every process of instance B: its uids are offline on A at once.
    on_b_uids = [f"u{i}" for i in range(len(on_a), n)]
    asker = on_a[0]
    t0 = time.monotonic()
    b.kill()
    elapsed = offline_within(asker, on_b_uids, 10, since=t0)
    print(f"\nkilled instance offline after {elapsed:.2f}s ({redis_url.split(':')[0]})")
    assert elapsed < 2.0  # its subscriptions ended with its process: no TTL to wait for
    assert asker.query("online_count") == len(on_a)
    assert asker.query("uids_in_group g1") == [f"u{i}" for i in range(1, len(on_a), 2)]
    assert asker.query("uids") == [f"u{i}" for i in range(len(on_a))]
    assert asker.ask(f"to_client {on_b[0].cid} gone") == "ok True"


@pytest.mark.timeout(180)
def test_dead_instance_entries_are_removed_from_redis(instances, redis_server):
    a, b = instances(redis_server.url), instances(redis_server.url)
    keep, gone = Client(a.port), Client(b.port)
    assert keep.ask("uid keep") == "ok" and gone.ask("uid gone") == "ok"
    assert gone.ask("join shared") == "ok" and keep.ask("join shared") == "ok"
    wait_until(lambda: keep.query("group_size shared") == 2, 10, what="both in the group")

    def members(key: str) -> bytes:
        return command(redis_server.port, "SMEMBERS", key)

    assert gone.cid.encode() in members("gw:g:{shared}")
    b.kill()
    assert offline_within(keep, ["gone"], 10) < 10
    # The query that found the dead entry removed it; the reaper removes the rest
    # (the dead workers' hashes and their registry entries).
    wait_until(lambda: gone.cid.encode() not in members("gw:u:{gone}"), 5, what="lazy cleanup")
    assert keep.query("group_size shared") == 1
    wait_until(lambda: gone.cid.encode() not in members("gw:g:{shared}"), 5,
               what="the group's dead entry removed")
    dead_node = gone.cid[:12]
    wait_until(lambda: dead_node.encode() not in command(redis_server.port, "SMEMBERS",
                                                         "gw:nodes"), 45, interval=0.5,
               what="the reaper removed the dead node")
    assert command(redis_server.port, "EXISTS", f"gw:{{{dead_node}}}:c") == b":0\r\n"
    assert keep.cid[:12].encode() in command(redis_server.port, "SMEMBERS", "gw:nodes")
    assert keep.query("uids") == ["keep"]


@pytest.mark.timeout(120)
def test_a_stopped_instance_leaves_nothing_behind(instances, redis_server):
    a, b = instances(redis_server.url), instances(redis_server.url)
    asker = Client(a.port)
    leaving = spread(b.port, 2, 2)
    for i, c in enumerate(leaving):
        c.ask(f"uid bye{i}")
        c.ask("join leaving")
    wait_until(lambda: asker.query("group_size leaving") == len(leaving), 10, what="presence")
    nodes = {c.cid[:12] for c in leaving}
    assert b.g.stop() == 0  # TERM: graceful
    # The workers removed their presence as they exited: nothing waits for a TTL.
    assert asker.query("group_size leaving") == 0
    assert asker.query("uids") == [] and asker.query("online_count") == 1
    registry = command(redis_server.port, "SMEMBERS", "gw:nodes")
    assert not any(n.encode() in registry for n in nodes)
    for key in ("gw:g:{leaving}", "gw:u:{bye0}", *(f"gw:{{{n}}}" for n in nodes),
                *(f"gw:{{{n}}}:c" for n in nodes)):
        assert command(redis_server.port, "EXISTS", key) == b":0\r\n", key


@pytest.mark.timeout(120)
def test_a_frozen_instance_drops_out_within_the_liveness_ttl(instances, redis_server):
    from geworker.messaging.redis import LIVENESS_TTL, REFRESH

    a, b = instances(redis_server.url), instances(redis_server.url)
    asker, frozen = Client(a.port), Client(b.port)
    assert frozen.ask("uid frozen") == "ok"
    wait_until(lambda: asker.query("is_uid_online frozen"), 10, what="frozen online")
    # SIGSTOP keeps its connections to Redis open, as a machine that vanished does:
    # only the TTL of its liveness ends it.
    t0 = time.monotonic()
    os.killpg(b.g.pid, signal.SIGSTOP)
    try:
        elapsed = offline_within(asker, ["frozen"], LIVENESS_TTL + 5, since=t0)
        print(f"\nfrozen instance offline after {elapsed:.2f}s (LIVENESS_TTL={LIVENESS_TTL})")
        assert LIVENESS_TTL - REFRESH - 1 <= elapsed <= LIVENESS_TTL + 1
        assert asker.query("online_count") == 1
    finally:
        os.killpg(b.g.pid, signal.SIGCONT)
    # Thawed, it finds its liveness expired and writes its presence again.
    wait_until(lambda: asker.query("is_uid_online frozen"), 10, what="back online")
    assert asker.query("online_count") == 2
    assert "Redis lost this worker's presence (expired)" in b.g.log()
    assert asker.ask("to_uid frozen thawed") == "ok True"
    assert frozen.next_push() == "thawed"


@pytest.mark.timeout(180)
def test_redis_restart_during_a_steady_stream(instances, redis_server):
    inst = instances(redis_server.url)
    clients = spread(inst.port, 6, 2)
    by_worker: dict[int, list[Client]] = {}
    for c in clients:
        by_worker.setdefault(c.pid, []).append(c)
    (pid_a, on_a), (pid_b, on_b) = by_worker.items()
    sender, local_receiver, remote = on_a[0], on_a[1], on_b[0]
    for c in (local_receiver, remote):
        assert c.ask("join room") == "ok"
        assert c.ask(f"uid r{c.pid}") == "ok"
    wait_until(lambda: sender.query("group_size room") == 2, 10, what="both receivers joined")
    pids = set(inst.g.worker_pids())

    got: dict[str, list[tuple[float, str]]] = {"local": [], "remote": []}
    replies: list[tuple[float, str]] = []
    i = 0

    def pump(seconds: float) -> None:
        nonlocal i
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            i += 1
            replies.append((time.monotonic(), sender.ask(f"to_group room m{i}")))
            for name, c in (("local", local_receiver), ("remote", remote)):
                got[name] += [(time.monotonic(), line) for line in c.pushes_within(0.005)]
            time.sleep(0.01)

    pump(1.0)
    assert got["local"] and got["remote"]
    redis_server.kill()
    down = time.monotonic()
    pump(3.0)
    redis_server.start()
    up = time.monotonic()
    wait_until(lambda: (pump(0.2), any(t > up for t, _ in got["remote"]))[1], 20,
               what="delivery to the other worker resumed")
    pump(0.5)
    # The same worker's connection kept getting the stream through the outage.
    during = [line for t, line in got["local"] if down + 0.5 < t < up]
    assert len(during) > 20, during
    # The other worker got nothing meanwhile (Redis was gone), and everything after.
    assert not [line for t, line in got["remote"] if down + 0.5 < t < up]
    # Sends reported the outage (False) and went back to True.
    assert any(r == "ok False" for t, r in replies if down < t < up)
    assert replies[-1][1] == "ok True"
    # Nothing crashed: the same workers serve; no traceback in the log.
    assert set(inst.g.worker_pids()) == pids
    log = inst.g.log()
    assert "Traceback" not in log, log
    # One warning per worker for the outage, and one line when it ended.
    warnings = inst.warnings_per_worker()
    assert warnings == {pid_a: 1, pid_b: 1}, log
    assert log.count("is reachable again after") == 2
    # Presence was written again: the other worker's view is whole.
    wait_until(lambda: sender.query("online_count") == len(clients), 10, what="online_count")
    assert sender.query("uids") == sorted(f"r{c.pid}" for c in (local_receiver, remote))
    assert sender.query("group_size room") == 2
    stats = sender.describe()
    assert stats["reconnects"] == 1 and stats["send_failures"] >= 1 and stats["connected"]


@pytest.mark.timeout(120)
def test_queries_answer_the_local_share_when_redis_does_not_answer(instances, redis_server):
    inst = instances(redis_server.url)
    here, there = one_per_worker(spread(inst.port, 2, 2))
    here.ask("uid here")
    there.ask("uid there")
    wait_until(lambda: here.query("uids") == ["here", "there"], 10, what="both uids")
    before = here.describe()["query_timeouts"]
    redis_server.pause()
    try:
        t0 = time.monotonic()
        assert here.query("uids") == ["here"]  # Redis is frozen: only this worker's share
        elapsed = time.monotonic() - t0
        assert 0.9 <= elapsed < 2.0, elapsed
        assert here.query(f"is_online {there.cid}") is False
        assert here.describe()["query_timeouts"] >= before + 2
        # The outage is noticed within a few seconds; then queries do not wait at all.
        wait_until(lambda: not here.describe()["connected"], 15, what="the outage noticed")
        t0 = time.monotonic()
        assert here.query("online_count") == 1
        assert time.monotonic() - t0 < 0.5
        assert here.ask("to_uid there lost") == "ok False"  # fails fast, counted
        assert here.describe()["send_failures"] >= 1
    finally:
        redis_server.resume()
    wait_until(lambda: here.query("uids") == ["here", "there"], 20, what="Redis back")
    assert here.ask("to_uid there found") == "ok True"
    assert there.next_push() == "found"
    assert inst.warnings_per_worker()[here.pid] == 1


OUTSIDE = """
import json, sys, time
from geworker import Messenger

url, uid, cid = sys.argv[1:4]
with Messenger(url) as m:
    out = {
        "to_uid": m.send_to_uid(uid, "from a script"),
        "to_client": m.send_to_client(cid, "direct from a script"),
        "to_dead": m.send_to_client("0123456789abff", "nobody"),
        "online": m.online_count(),
        "is_uid_online": m.is_uid_online(uid),
        "ids": m.client_ids_of_uid(uid),
        "members": m.group_members("room"),
        "uid_of": m.uid_of(cid),
        "connected": m.describe()["connected"],
    }
    print(json.dumps(out))
"""

FLASK = """
import json, sys
from flask import Flask, jsonify
from geworker import Messenger

url = sys.argv[1]
app = Flask(__name__)
messenger = Messenger(url)

@app.post("/notify/<uid>")
def notify(uid):
    sent = messenger.send_to_uid(uid, f"hello {uid} from flask")
    return jsonify(sent=sent, online=messenger.is_uid_online(uid),
                   count=messenger.online_count(), size=messenger.group_size("room"))

with app.test_client() as client:
    print(json.dumps(client.post(f"/notify/{sys.argv[2]}").get_json()))
"""


def run_python(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.timeout(120)
def test_a_script_and_a_flask_app_send_and_query_through_redis(instances, redis_url):
    inst = instances(redis_url)
    ann, bob = one_per_worker(spread(inst.port, 2, 2))
    ann.ask("uid ann")
    ann.ask("join room")
    ann.ask('session name "Ann"')
    bob.ask("uid bob")
    wait_until(lambda: bob.query("group_size room") == 1, 10, what="presence written")
    out = run_python(OUTSIDE, redis_url, "ann", bob.cid)
    assert out == {"to_uid": True, "to_client": True, "to_dead": False, "online": 2,
                   "is_uid_online": True, "ids": [ann.cid], "members": {ann.cid: {"name": "Ann"}},
                   "uid_of": "bob", "connected": True}
    assert ann.next_push() == "from a script"
    assert bob.next_push() == "direct from a script"
    out = run_python(FLASK, redis_url, "bob")
    assert out == {"sent": True, "online": True, "count": 2, "size": 1}
    assert bob.next_push() == "hello bob from flask"


DOWN = """
import json, sys, time, logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
from geworker import Messenger

m = Messenger(sys.argv[1], timeout=0.5)
t0 = time.monotonic()
out = [m.send_to_uid("ann", "x"), m.send_to_all("y"), m.send_to_client("0123456789ab1", "z"),
       m.online_count(), m.uids(), m.is_online("0123456789ab1")]
out.append(round(time.monotonic() - t0, 2))
out.append(m.describe()["connected"])
out.append(m.describe()["send_failures"])
print(json.dumps(out))
"""


@pytest.mark.timeout(60)
def test_a_script_with_redis_down_fails_fast_with_one_warning():
    port = free_port()  # nothing listens there
    out = subprocess.run([sys.executable, "-c", DOWN, f"redis://127.0.0.1:{port}/0"],
                         capture_output=True, text=True, timeout=30,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result[:6] == [False, False, False, 0, [], False]
    assert result[6] < 2.0  # refused at once, never the query timeout
    assert result[7:] == [False, 3]
    assert out.stderr.count(OUTAGE_WARNING) == 1, out.stderr


@pytest.mark.timeout(90)
def test_acl_user_and_password_from_the_url(instances, tmp_path):
    # The user may run what docs/messaging-redis.md lists, on the prefix's keys and channels.
    server = RedisServer(tmp_path / "acl", extra=(
        "--user", "default", "off", "--user", "app", "on", ">s3cr:t", "resetkeys", "~gw:*",
        "resetchannels", "&gw:*", "-@all", *documented_acl()))
    try:
        assert b"NOAUTH" in command(server.port, "PING")  # the default user is off
        url = f"redis://app:s3cr%3At@127.0.0.1:{server.port}/0"
        good = instances(url)
        a, b = one_per_worker(spread(good.port, 2, 2))
        b.ask("uid acl")
        wait_until(lambda: a.query("is_uid_online acl"), 10, what="presence through ACL")
        assert a.ask("to_uid acl through acl") == "ok True"
        assert b.next_push() == "through acl"
        assert "s3cr" not in good.g.log()
        # A wrong password: the worker says so once, serves, and its own connections work.
        bad = instances(f"redis://app:wrong@127.0.0.1:{server.port}/0", workers=1,
                        connected=False)
        wait_until(lambda: OUTAGE_WARNING in bad.g.log(), 10, what="the outage warning")
        c, d = Client(bad.port), Client(bad.port)
        assert d.ask("uid local") == "ok"
        assert c.ask("to_uid local same worker") == "ok False"  # delivered here, not beyond
        assert d.next_push() == "same worker"
        assert c.query("is_uid_online local") is True
        time.sleep(1.5)  # a few reconnection attempts
        log = bad.g.log()
        assert log.count(OUTAGE_WARNING) == 1, log
        assert "password" in log.lower() and "wrong" not in log
    finally:
        server.stop()


@pytest.mark.timeout(90)
def test_tls_with_rediss(instances, tmp_path):
    tls = TlsFiles(tmp_path / "certs")
    server = RedisServer(tmp_path / "tls", tls=tls)
    try:
        assert command(server.port, "PING") in (b"", b"-ERR")  # plain text is not spoken
        inst = instances(server.url)  # rediss://...?ssl_ca_certs=<the test CA>
        a, b = one_per_worker(spread(inst.port, 2, 2))
        b.ask("uid secure")
        wait_until(lambda: a.query("is_uid_online secure"), 10, what="presence over TLS")
        assert a.ask("to_uid secure over tls") == "ok True"
        assert b.next_push() == "over tls"
        # A script: with the CA, and with certificate checks off.
        for url in (server.url, f"rediss://127.0.0.1:{server.port}/0?ssl_cert_reqs=none"):
            out = run_python(OUTSIDE, url, "secure", a.cid)
            assert out["to_uid"] is True and out["is_uid_online"] is True, out
            assert b.next_push() == "from a script"
            assert a.next_push() == "direct from a script"
        # Without the CA the certificate is refused: a failed send, not an exception.
        out = subprocess.run(
            [sys.executable, "-c", "import sys; from geworker import Messenger; "
             "print(Messenger(sys.argv[1]).send_to_uid('secure', 'x'))",
             f"rediss://127.0.0.1:{server.port}/0"],
            capture_output=True, text=True, timeout=30, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr
        assert "certificate verify failed" in out.stderr.lower() or "ssl" in out.stderr.lower()
    finally:
        server.stop()


@pytest.mark.timeout(120)
def test_tls_with_a_cluster(instances, tmp_path):
    cluster = RedisCluster(tmp_path / "cluster", tls=TlsFiles(tmp_path / "certs"))
    try:
        a, b = instances(cluster.url), instances(cluster.url)
        here, there = Client(a.port), Client(b.port)
        there.ask("uid far")
        there.ask("join tls-room")
        wait_until(lambda: here.query("uids_in_group tls-room") == ["far"], 10,
                   what="presence over TLS on the cluster")
        assert here.ask("to_group tls-room sharded and encrypted") == "ok True"
        assert there.next_push() == "sharded and encrypted"
    finally:
        cluster.stop()


@pytest.mark.timeout(120)
def test_a_cluster_acl_user_limited_to_the_documented_commands(instances, redis_cluster):
    for server in redis_cluster.servers:
        assert command(server.port, "ACL", "SETUSER", "gw", "on", ">pw", "resetkeys", "~gw:*",
                       "resetchannels", "&gw:*", "-@all", *documented_acl(cluster=True)
                       ) == b"+OK\r\n"
    url = redis_cluster.url.replace("://", "://gw:pw@")
    a, b = instances(url), instances(url)
    here, there = Client(a.port), Client(b.port)
    there.ask("uid limited")
    there.ask("join acl-room")
    wait_until(lambda: here.query("group_members acl-room") == {there.cid: {}}, 10,
               what="presence with a limited user")
    assert here.ask("to_group acl-room through the acl") == "ok True"
    assert there.next_push() == "through the acl"
    assert "NOPERM" not in a.g.log() + b.g.log()
