"""The Redis backend: every worker of every instance, through one Redis or a Redis Cluster.

``messaging="redis://[user:password@]host:port/db"`` (``rediss://`` for TLS,
``redis+cluster://host:port[,host:port]`` and ``rediss+cluster://`` for a
Redis Cluster; see :func:`~geworker.messaging.redis_layout.parse_url`). The
names of the keys and channels are in :mod:`~geworker.messaging.redis_layout`;
``docs/messaging-redis.md`` has the whole story for operators.

**Delivery** is pub/sub (shard channels on a cluster: ``SSUBSCRIBE`` and
``SPUBLISH``, so each channel lives on one shard and delivery spreads over
them). Each worker subscribes to its node's channel (frames for one of its
clients: ``send_to_client``, ``close_client``, routed binds and joins), to
the channel of every uid and group it holds a connection of (subscribed when
the first local connection binds or joins, unsubscribed when the last one
leaves), and to the channel of ``send_to_all``. A payload is the sender's
node (12 bytes) and a :mod:`~geworker.messaging.wire` frame; a worker skips
its own frames (it already ran them locally). Frames from one process to one
channel arrive in order.

**Presence** lives in Redis data structures, a copy of each worker's
membership index (the worker's own index stays the truth for its
connections): each change (a connection opens or closes, binds, joins,
leaves, changes its session) is noted by :attr:`Membership.observer
<geworker.transport.membership.Membership.observer>` and written shortly
after by the worker's writer greenlet, coalesced, never in the callback.
Queries combine this process's own answer with what Redis holds for the
other nodes, in at most two round trips and never longer than ``timeout``.

**Liveness.** A node counts while its ``alive`` key exists (a TTL of
:data:`LIVENESS_TTL` seconds, refreshed every :data:`REFRESH` seconds) *and*
its channel has a subscription. A process that dies (``kill -9``, a crash,
the OOM killer) closes its connections, so Redis drops its subscription at
once and it leaves every query immediately; a machine or network that goes
away leaves a half-open connection, and the TTL ends it within
:data:`LIVENESS_TTL` seconds. The entries a dead node leaves in the indexes
are removed by the first process that finds them (a query, or the reaper
every worker runs about every :data:`REAP_EVERY` seconds).

**Outages.** While Redis does not answer, a worker's own connections still
get what is sent to them, sends to other processes return False at once and
are counted (``send_failures``), queries answer with this process's share
(counted as ``query_timeouts``), and nothing raises. One warning is logged
when the outage starts and one line when it ends. The worker reconnects
with exponential back-off and jitter (capped at :data:`BACKOFF_CAP`
seconds), subscribes again and writes its whole presence again. A cluster
that moves a slot is handled the same way.

Outside a worker (:class:`geworker.Messenger` with a Redis URL) the same
class sends synchronously and subscribes to nothing: a send to one client
returns whether its worker is subscribed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..transport.membership import NODE_LENGTH, membership
from ..transport.state import ConnectionState
from . import local
from .backend import DEFAULT_TIMEOUT, Backend
from .redis_client import BATCH, Command, RedisClient, Subscription, import_redis, text
from .redis_layout import DATA_TTL, Layout, decode_record, encode_record, parse_url
from .redis_queries import Reader
from .wire import Op, decode

if TYPE_CHECKING:
    from ..transport.connection import Connection

__all__ = ["BACKOFF_CAP", "LIVENESS_TTL", "REAP_EVERY", "REFRESH", "RedisBackend"]

#: Seconds a node's ``alive`` key lives without a refresh: the bound on how
#: long a node whose machine went away still counts.
LIVENESS_TTL = 8
#: Seconds between two refreshes of a worker's liveness (and pings of its subscriptions).
REFRESH = 2.0
#: Seconds a subscription may stay silent (it is pinged every REFRESH).
SUBSCRIBER_TIMEOUT = 3 * REFRESH
#: Seconds, on average, between two looks for dead nodes' entries.
REAP_EVERY = 15.0
#: First and largest pause between two attempts to reach Redis (seconds).
BACKOFF_FIRST = 0.1
BACKOFF_CAP = 5.0
#: Bytes of frames that may wait for Redis before sends are refused.
OUTBOX_BYTES = 64 * 1024 * 1024

_MISSING = object()
_GONE = (ConnectionState.CLOSED, ConnectionState.HANDED_OFF)
_LENGTH = struct.Struct("!I")


def _spawn(target: Any, *args: Any) -> None:
    # threading's names at call time: inside a worker they are gevent's (monkey patching).
    threading.Thread(target=target, args=args, daemon=True).start()


def _record(conn: Connection) -> tuple[str | None, frozenset[str], str] | None:
    """What Redis holds about one connection (None once it closed)."""
    if conn.state in _GONE:
        return None
    return conn.uid, conn.groups, json.dumps(conn.session, separators=(",", ":"))


class RedisBackend(Backend):
    """Messaging through Redis or a Redis Cluster (see the module doc).

    Args:
        url: a Redis URL (see :func:`~geworker.messaging.redis_layout.parse_url`).
        listen: True in a worker (it subscribes, writes its presence, keeps
            the connection up); False for any other process, which sends and
            asks synchronously.
        timeout: seconds a query waits for Redis.

    Raises:
        ConfigurationError: for a bad URL, or when redis-py is not installed.
    """

    kind = "redis"

    def __init__(self, url: str, listen: bool = True, timeout: float = DEFAULT_TIMEOUT,
                 log: Any = None) -> None:
        super().__init__(timeout, log)
        self.settings = parse_url(url)
        self._redis = import_redis()
        self.layout = Layout(self.settings.prefix)
        self.node = membership.node
        self.listen = listen
        self.closed = False
        #: Channels this worker is subscribed to (or asked to be).
        self.channels: set[str] = set()
        self._sender = self.node.encode()
        self._client: RedisClient | None = None
        self._subscriptions: dict[str, Subscription] = {}
        self._connected = False
        self._generation = 0
        self._lock = threading.Lock()        # the client (outside a worker)
        self._write_lock = threading.Lock()  # the presence copy and the subscriptions
        self._stop = threading.Event()
        self._trouble = threading.Event()
        self._trouble_reason: BaseException | None = None
        self._wake = threading.Event()
        self._outbox: deque[tuple[str, bytes, bool]] = deque()  # (channel, payload, routed)
        self._queued = 0
        self._dirty: dict[int, Connection] = {}
        self._cleanup: list[Command] = []
        self._mirror: dict[str, tuple[str | None, frozenset[str], str]] = {}
        self._down_since: float | None = None
        self._failures_at = 0
        self._ever_connected = False
        if listen:
            membership.observer = self._changed
            _spawn(self._monitor)
            _spawn(self._writer)

    # -- state -------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while Redis answers."""
        return self._connected if self.listen else self._down_since is None

    def _outage(self, exc: BaseException) -> None:
        """Redis did not answer: warn once per outage."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._failures_at = self.stats["send_failures"]
            self.log.warning(
                "geworker: messaging: Redis at %s is unreachable (%s: %s); this process's "
                "own connections still get their messages, sends to other processes fail "
                "until it is back", self.settings.redacted(), type(exc).__name__, exc)

    def _recovered(self) -> None:
        if self._down_since is not None:
            self.stats["reconnects"] += 1
            self.log.info("geworker: messaging: Redis at %s is reachable again after %.1fs "
                          "(%d send(s) failed meanwhile)", self.settings.redacted(),
                          time.monotonic() - self._down_since,
                          self.stats["send_failures"] - self._failures_at)
            self._down_since = None
        elif not self._ever_connected and self.listen:
            self.log.info("geworker: messaging through Redis at %s (node %s)",
                          self.settings.redacted(), self.node)
        self._ever_connected = True

    def trouble(self, exc: BaseException, generation: int) -> None:
        """A connection of ``generation`` failed: the monitor reconnects (stale news is ignored)."""
        if generation == self._generation and not self.closed:
            self._trouble_reason = exc
            self._trouble.set()

    def _conn(self) -> RedisClient:
        """The client to use now (outside a worker: made on first use)."""
        client = self._client
        if client is not None:
            return client
        if self.listen:
            raise ConnectionError("not connected to Redis")
        with self._lock:
            if self._client is None:
                self._client = self._new_client()
            return self._client

    def _new_client(self) -> RedisClient:
        return RedisClient(self.settings, f"geworker-{self.node}", SUBSCRIBER_TIMEOUT)

    def _failed(self, exc: BaseException) -> None:
        """Outside a worker: a command failed; start afresh next time."""
        self._outage(exc)
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # -- the worker's greenlets -----------------------------------------------------

    def _monitor(self) -> None:
        """Connect, keep the liveness fresh, reconnect with back-off after an outage."""
        delay = BACKOFF_FIRST
        next_reap = time.monotonic() + random.uniform(0.5, 1.5) * REAP_EVERY
        while not self.closed:
            if not self._connected:
                try:
                    self._connect()
                except Exception as exc:
                    self._teardown()
                    self._trouble.clear()
                    if self.closed:
                        return
                    self._outage(exc)
                    self._stop.wait(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, BACKOFF_CAP)
                    continue
                delay = BACKOFF_FIRST
                self._recovered()
            self._trouble.wait(REFRESH)
            if self.closed:
                return
            if self._trouble.is_set():
                self._teardown()
                self._trouble.clear()
                self._outage(self._trouble_reason or ConnectionError("connection lost"))
                continue
            try:
                self._heartbeat()
                if time.monotonic() >= next_reap:
                    next_reap = time.monotonic() + random.uniform(0.5, 1.5) * REAP_EVERY
                    self._reap()
            except Exception as exc:
                self._teardown()
                self._trouble.clear()
                self._outage(exc)

    def _connect(self) -> None:
        self._generation += 1
        generation = self._generation
        client = self._client = self._new_client()
        client.ping()
        subscriptions = self._subscriptions = {
            shard: Subscription(self, client, client.subscriber(shard), generation)
            for shard in client.shards()}
        with self._write_lock:
            self.channels = {self.layout.node_channel(self.node), self.layout.all_channel}
            self.channels.update(self.layout.uid_channel(u) for u in membership.uids)
            self.channels.update(self.layout.group_channel(g) for g in membership.groups)
            self._subscribe(sorted(self.channels), [])
            for subscription in subscriptions.values():
                _spawn(subscription.read)
            self._full_sync(client)
        self._connected = True
        self._wake.set()

    def _teardown(self) -> None:
        """Forget the connections of the last attempt (their late errors are ignored)."""
        self._connected = False
        self._generation += 1
        for subscription in self._subscriptions.values():
            subscription.close()
        self._subscriptions = {}
        client, self._client = self._client, None
        if client is not None:
            client.close()
        lost = len(self._outbox)
        if lost:
            self._outbox.clear()
            self._queued = 0
            self.stats["send_failures"] += lost

    def _changed(self, conn: Connection) -> None:
        """The membership observer: note the change; the writer writes it."""
        if conn.accepts_messages:
            self._dirty[conn.id] = conn
            self._wake.set()

    def _writer(self) -> None:
        """Publish queued frames and write presence changes, as they come."""
        while not self.closed:
            self._wake.wait()
            self._wake.clear()
            if self.closed:
                return
            if not self._connected:
                continue
            generation = self._generation
            try:
                self._flush()
            except Exception as exc:
                self.trouble(exc, generation)

    def _flush(self) -> None:
        client = self._conn()
        outbox = self._outbox
        while outbox:
            frames: list[tuple[str, bytes, bool]] = []
            while outbox and len(frames) < BATCH:
                frames.append(outbox.popleft())
            self._queued -= sum(len(payload) for _, payload, _ in frames)
            try:
                results = client.run([(channel, (client.publish, channel, payload))
                                      for channel, payload, _ in frames])
            except Exception:
                self.stats["send_failures"] += len(frames)
                raise
            for (_, _, routed), receivers in zip(frames, results, strict=True):
                if routed and not receivers:
                    self.stats["dropped"] += 1  # the client's worker is gone
        with self._write_lock:
            dirty, self._dirty = self._dirty, {}
            cleanup, self._cleanup = self._cleanup, []
            if dirty:
                commands, on, off = self._presence(dirty.values())
                self._subscribe(on, off)
                client.run(commands)
            if cleanup:
                client.run(cleanup)

    # -- presence ----------------------------------------------------------------------

    def _presence(self, conns: Iterable[Connection]) -> tuple[list[Command], list[str],
                                                               list[str]]:
        """The commands that bring Redis up to date with ``conns``; channels to (un)subscribe."""
        layout, node = self.layout, self.node
        conns_key, home = layout.conns(node), layout.alive(node)
        commands: list[Command] = []
        uids: set[str] = set()
        groups: set[str] = set()
        for conn in conns:
            cid = conn.client_id
            old = self._mirror.get(cid)
            new = _record(conn)
            if old == new:
                continue
            old_uid, old_groups = (old[0], old[1]) if old else (None, frozenset())
            new_uid, new_groups = (new[0], new[1]) if new else (None, frozenset())
            if old_uid != new_uid:
                if old_uid is not None:
                    key = layout.uid(old_uid)
                    commands.append((key, ("SREM", key, cid)))
                    uids.add(old_uid)
                if new_uid is not None:
                    key = layout.uid(new_uid)
                    commands.append((key, ("SADD", key, cid)))
                    uids.add(new_uid)
            for group in old_groups - new_groups:
                key = layout.group(group)
                commands.append((key, ("SREM", key, cid)))
                groups.add(group)
            for group in new_groups - old_groups:
                key = layout.group(group)
                commands.append((key, ("SADD", key, cid)))
                groups.add(group)
            if new is None:
                commands.append((home, ("HDEL", conns_key, cid)))
                del self._mirror[cid]
            else:
                commands.append((home, ("HSET", conns_key, cid, encode_record(*new))))
                self._mirror[cid] = new
        on: list[str] = []
        off: list[str] = []
        for names, index, node_key, channel_of in (
                (uids, membership.uids, layout.node_uids(node), layout.uid_channel),
                (groups, membership.groups, layout.node_groups(node), layout.group_channel)):
            for name in names:
                channel = channel_of(name)
                if name in index:
                    commands.append((home, ("SADD", node_key, name)))
                    if channel not in self.channels:
                        on.append(channel)
                else:
                    commands.append((home, ("SREM", node_key, name)))
                    if channel in self.channels:
                        off.append(channel)
        return commands, on, off  # (a key made afresh gets its TTL at the next refresh)

    def _subscribe(self, on: list[str], off: list[str]) -> None:
        """(Un)subscribe channels, each on its shard's connection."""
        client = self._conn()
        for subscribe, channels in ((True, on), (False, off)):
            by_shard: dict[str, list[str]] = {}
            for channel in channels:
                by_shard.setdefault(client.shard_of(channel), []).append(channel)
            for shard, names in by_shard.items():
                subscription = self._subscriptions.get(shard)
                if subscription is None:
                    raise ConnectionError(f"no subscription connection to shard {shard}")
                subscription.change(subscribe, names)
        self.channels.update(on)
        self.channels.difference_update(off)

    def _full_sync(self, client: RedisClient) -> None:
        """Write this worker's whole presence again (after a reconnect, or when it expired)."""
        layout, node = self.layout, self.node
        home = layout.alive(node)
        info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                           "since": round(time.time(), 3)})
        # The alive key first, on its own: an index entry of a node is never seen
        # before the node is alive (the cleanup rule of queries relies on it).
        client.run([(home, ("SET", home, info, "EX", LIVENESS_TTL)),
                    (home, ("DEL", layout.reaped(node))),
                    (layout.nodes, ("SADD", layout.nodes, node))])
        conns_key, uids_key, groups_key = (layout.conns(node), layout.node_uids(node),
                                           layout.node_groups(node))
        commands: list[Command] = [(home, ("DEL", conns_key, uids_key, groups_key))]
        for cid, (uid, groups, _) in self._mirror.items():  # what may linger from before
            if uid is not None:
                commands.append((layout.uid(uid), ("SREM", layout.uid(uid), cid)))
            commands += [(layout.group(g), ("SREM", layout.group(g), cid)) for g in groups]
        self._mirror = {}
        self._dirty.clear()
        for conn in local.message_connections():
            record = _record(conn)
            if record is None:
                continue
            cid = conn.client_id
            self._mirror[cid] = record
            commands.append((home, ("HSET", conns_key, cid, encode_record(*record))))
            if record[0] is not None:
                commands.append((layout.uid(record[0]), ("SADD", layout.uid(record[0]), cid)))
            commands += [(layout.group(g), ("SADD", layout.group(g), cid)) for g in record[1]]
        for key, names in ((uids_key, list(membership.uids)),
                           (groups_key, list(membership.groups))):
            for start in range(0, len(names), BATCH):
                commands.append((home, ("SADD", key, *names[start:start + BATCH])))
            commands.append((home, ("EXPIRE", key, DATA_TTL)))
        commands.append((home, ("EXPIRE", conns_key, DATA_TTL)))
        client.run(commands)

    def _heartbeat(self) -> None:
        """Refresh the liveness; write everything again if Redis lost it; ping subscriptions."""
        layout, node = self.layout, self.node
        home = layout.alive(node)
        client = self._conn()
        for subscription in list(self._subscriptions.values()):
            subscription.send([("PING",)])
        with self._write_lock:  # (no write in flight: the hash exists iff the mirror has entries)
            alive, conns, _, _, reaped, _ = client.run([
                (home, ("EXPIRE", home, LIVENESS_TTL)),
                (home, ("EXPIRE", layout.conns(node), DATA_TTL)),
                (home, ("EXPIRE", layout.node_uids(node), DATA_TTL)),
                (home, ("EXPIRE", layout.node_groups(node), DATA_TTL)),
                (home, ("DEL", layout.reaped(node))),
                (layout.nodes, ("SADD", layout.nodes, node))])
            if not alive or reaped or (self._mirror and not conns):
                self.log.info("geworker: messaging: Redis lost this worker's presence (%s); "
                              "writing it again", "expired" if not alive else "removed")
                self._full_sync(client)

    def _reap(self) -> None:
        """Remove what dead nodes left (their channel has no subscriber: their process is gone)."""
        client = self._conn()
        reader = Reader(client, self.layout, self.node)
        _, dead = reader.per_node(reader.nodes())
        for node in dead[:16]:
            self._remove_node(client, node)

    def _remove_node(self, client: RedisClient, node: str) -> None:
        layout = self.layout
        home = layout.alive(node)
        locked, records = client.run([
            (home, ("SET", layout.reaping(node), self.node, "NX", "EX", 60)),
            (home, ("HGETALL", layout.conns(node)))])
        if not locked:
            return
        commands: list[Command] = []
        for cid, value in dict(records or {}).items():
            record = decode_record(value) or {}
            cid = text(cid)
            if isinstance(record.get("u"), str):
                key = layout.uid(record["u"])
                commands.append((key, ("SREM", key, cid)))
            for group in record.get("g") or ():
                key = layout.group(str(group))
                commands.append((key, ("SREM", key, cid)))
        commands += [(home, ("DEL", layout.conns(node), layout.node_uids(node),
                             layout.node_groups(node))),
                     (layout.nodes, ("SREM", layout.nodes, node))]
        client.run(commands)
        client.run([(home, ("SET", layout.reaped(node), "1", "EX", DATA_TTL))])
        self.log.info("geworker: messaging: removed the entries of node %s "
                      "(%d connection(s)): its process is gone", node, len(records or {}))

    # -- sending ------------------------------------------------------------------------

    def _publish(self, channel: str, data: bytes, routed: bool) -> bool:
        if self.closed:
            return False
        if not self.listen:
            try:
                client = self._conn()
                (receivers,) = client.run([(channel, (client.publish, channel,
                                                      self._sender + data))])
            except Exception as exc:
                self._failed(exc)
                return False
            self._recovered()
            return bool(receivers) or not routed
        if not self._connected:
            return False
        payload = self._sender + data
        if self._queued + len(payload) > OUTBOX_BYTES:
            self.stats["dropped"] += 1
            self.warn("outbox", "geworker: messaging: %d bytes wait for Redis; "
                      "dropping frames", self._queued)
            return False
        self._outbox.append((channel, payload, routed))
        self._queued += len(payload)
        self._wake.set()
        return True

    def _route(self, node: str, data: bytes) -> bool:
        return self._publish(self.layout.node_channel(node), data, True)

    def _fan_out(self, data: bytes, op: Op, args: list[Any]) -> int:
        if op is Op.UID:
            channel = self.layout.uid_channel(args[0])
        elif op is Op.GROUP or op is Op.UNGROUP:
            channel = self.layout.group_channel(args[0])
        else:
            channel = self.layout.all_channel
        return 1 if self._publish(channel, data, False) else -1

    def deliver(self, payload: bytes) -> None:
        """Carry out a frame that came through a subscription (not our own)."""
        if payload[:NODE_LENGTH] == self._sender:
            return  # this worker's own fan-out: it ran here already
        body = payload[NODE_LENGTH + _LENGTH.size:]
        if (len(payload) < NODE_LENGTH + _LENGTH.size
                or _LENGTH.unpack_from(payload, NODE_LENGTH)[0] != len(body)):
            self.warn("frame", "geworker: messaging: a malformed frame from Redis was ignored")
            return
        try:
            frame = decode(body)
        except Exception as exc:
            self.warn("frame", "geworker: messaging: a frame from Redis was ignored: %s", exc)
            return
        if frame.op is not Op.QUERY and frame.op is not Op.REPLY:
            self.receive(frame)

    # -- queries ---------------------------------------------------------------------------

    def query(self, name: str, params: tuple[Any, ...], timeout: float | None = None) -> Any:
        """This process's share of the answer, and the others' from Redis within ``timeout``."""
        checked = local.check_params(name, params)
        kinds, _, _, empty = local.QUERIES[name]
        if checked is None:
            return empty
        if kinds[:1] == ("client_id",) and checked[0][:NODE_LENGTH] == self.node:
            return local.merge(name, [local.answer(name, checked)])
        shares = [local.answer(name, checked)]
        wait = self.timeout if timeout is None else timeout
        remote = self._ask_redis(name, checked, wait)
        if remote is _MISSING:
            self.stats["query_timeouts"] += 1
        else:
            shares.append(remote)
        return local.merge(name, shares)

    def _ask_redis(self, name: str, params: list[Any], wait: float) -> Any:
        if self.listen and not self._connected:
            return _MISSING
        box: dict[str, Any] = {}
        done = threading.Event()
        generation = self._generation

        def ask() -> None:
            try:
                reader = Reader(self._conn(), self.layout, self.node)
                box["answer"] = reader.share(name, params)
                if reader.stale and self.listen:  # a dead node's entries: the writer drops them
                    self._cleanup += reader.stale
                    self._wake.set()
            except Exception as exc:
                box["error"] = exc
            finally:
                done.set()

        _spawn(ask)
        if not done.wait(wait):
            if self._connected or not self.listen:
                self.warn("query", "geworker: messaging: Redis did not answer query %s within "
                          "%ss; the answer is this process's share", name, wait)
            return _MISSING
        error = box.get("error")
        if error is not None:
            if not self._is_outage(error):
                self.warn("query-error", "geworker: messaging: query %s failed in Redis: %r",
                          name, error)
            elif self.listen:
                self.trouble(error, generation)
            else:
                self._failed(error)
            return _MISSING
        if not self.listen:
            self._recovered()
        return box["answer"]

    def _is_outage(self, exc: BaseException) -> bool:
        """True for an error that says Redis (or the cluster's layout) is not as it was."""
        redis = self._redis
        return (isinstance(exc, (redis.ConnectionError, redis.TimeoutError, OSError,
                                 redis.exceptions.RedisClusterException))
                or str(exc).startswith(("MOVED", "ASK", "CLUSTERDOWN", "TRYAGAIN")))

    # -- the rest -------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop: remove this worker's presence from Redis (best effort), close the connections."""
        if self.closed:
            return
        if self.listen:
            if membership.observer == self._changed:
                membership.observer = None
            if self._connected:
                with contextlib.suppress(Exception):  # (Redis gone: the TTL ends the rest)
                    self._flush()
                    with self._write_lock:
                        self._remove_own(self._conn())
        self.closed = True
        self._stop.set()
        self._trouble.set()
        self._wake.set()
        self._teardown()

    def _remove_own(self, client: RedisClient) -> None:
        layout, node = self.layout, self.node
        home = layout.alive(node)
        commands: list[Command] = []
        for cid, (uid, groups, _) in self._mirror.items():
            if uid is not None:
                commands.append((layout.uid(uid), ("SREM", layout.uid(uid), cid)))
            commands += [(layout.group(g), ("SREM", layout.group(g), cid)) for g in groups]
        commands += [(home, ("DEL", home, layout.conns(node), layout.node_uids(node),
                             layout.node_groups(node))),
                     (layout.nodes, ("SREM", layout.nodes, node))]
        client.run(commands)
        self._mirror = {}

    def describe(self) -> dict[str, Any]:
        """The backend's state for ``status`` and the metrics (the URL without its password)."""
        return {**super().describe(), "url": self.settings.redacted(),
                "subscriptions": len(self.channels)}
