"""The redis-py side of the Redis backend: pipelines by shard, and subscription connections.

:class:`RedisClient` wraps one standalone server or one Redis Cluster behind
the same few calls: :meth:`~RedisClient.run` sends a list of commands as one
pipeline per shard (each command is routed by the key or channel named with
it), and :meth:`~RedisClient.subscriber` opens a connection for
subscriptions to one shard, read by a :class:`Subscription`. Every client
speaks RESP2, never retries on its own (the backend decides what a failure
means) and gives up on a command after :data:`COMMAND_TIMEOUT` seconds.

redis-py is imported here only when a client is made: it is an optional
dependency (``pip install 'geworker[redis]'``).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Protocol

from ..errors import ConfigurationError
from .redis_layout import RedisSettings

__all__ = ["BATCH", "COMMAND_TIMEOUT", "Command", "RedisClient", "Subscription",
           "import_redis", "subscriber_count", "text"]

#: Seconds a command to Redis may take before Redis counts as unreachable.
COMMAND_TIMEOUT = 2.0
#: Commands per pipeline, and channels per SUBSCRIBE.
BATCH = 1000

#: (the key or channel that routes it to its shard, the command and its arguments)
Command = tuple[str, tuple[Any, ...]]


def import_redis() -> Any:
    """The ``redis`` package.

    Raises:
        ConfigurationError: when redis-py is not installed.
    """
    try:
        import redis
    except ImportError:
        raise ConfigurationError("the Redis backend needs redis-py: "
                                 "pip install 'geworker[redis]'") from None
    return redis


def text(value: Any) -> str:
    """A reply's bytes as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


def subscriber_count(reply: Any) -> int:
    """The count in a ``PUBSUB NUMSUB``/``SHARDNUMSUB`` reply (whatever shape redis-py gives)."""
    if isinstance(reply, dict):
        return sum(int(v) for v in reply.values())
    items = list(reply or ())
    if items and isinstance(items[0], (list, tuple)):
        return sum(int(item[1]) for item in items)
    return int(items[1]) if len(items) >= 2 else 0


class RedisClient:
    """redis-py clients for one server or one cluster (connects to a cluster when made).

    Args:
        settings: what the URL says.
        name: the client name Redis shows (``CLIENT LIST``).
        subscriber_timeout: seconds a subscription connection may stay silent.

    Attributes:
        publish, numsub, subscribe, unsubscribe: the command names of this
            mode (``SPUBLISH``, ``PUBSUB SHARDNUMSUB``... on a cluster).
    """

    def __init__(self, settings: RedisSettings, name: str, subscriber_timeout: float) -> None:
        redis = import_redis()
        from redis.backoff import NoBackoff
        from redis.crc import key_slot
        from redis.retry import Retry

        self.subscriber_timeout = subscriber_timeout
        options: dict[str, Any] = dict(
            settings.connection_options(), socket_timeout=COMMAND_TIMEOUT,
            socket_connect_timeout=COMMAND_TIMEOUT, protocol=2, retry_on_timeout=False,
            retry=Retry(NoBackoff(), 0), health_check_interval=0, client_name=name)
        self.client: Any = None
        self.cluster: Any = None
        if settings.cluster:
            from redis.cluster import ClusterNode, RedisCluster

            self.cluster = RedisCluster(
                startup_nodes=[ClusterNode(host, port)  # type: ignore[no-untyped-call]
                               for host, port in settings.nodes],
                **options)
        elif settings.unix_path is not None:
            self.client = redis.Redis(unix_socket_path=settings.unix_path, db=settings.db,
                                      **options)
        else:
            host, port = settings.nodes[0]
            self.client = redis.Redis(host=host, port=port, db=settings.db, **options)
        self._key_slot = key_slot
        cluster = settings.cluster
        self.publish = "SPUBLISH" if cluster else "PUBLISH"
        self.numsub = "PUBSUB SHARDNUMSUB" if cluster else "PUBSUB NUMSUB"
        self.subscribe = "SSUBSCRIBE" if cluster else "SUBSCRIBE"
        self.unsubscribe = "SUNSUBSCRIBE" if cluster else "UNSUBSCRIBE"

    # -- commands -------------------------------------------------------------

    def _node(self, route: str) -> Any:
        return self.cluster.nodes_manager.get_node_from_slot(self._key_slot(route.encode()))

    def run(self, commands: list[Command]) -> list[Any]:
        """The results of ``commands``, in order: one pipeline per shard.

        Raises:
            redis.RedisError: when Redis does not answer, or a command fails
                (a ``MOVED`` included: the backend then connects afresh).
        """
        if not commands:
            return []
        if self.cluster is None:
            return self._pipeline(self.client, [c for _, c in commands])
        shards: dict[str, tuple[Any, list[int]]] = {}
        for i, (route, _) in enumerate(commands):
            node = self._node(route)
            entry = shards.get(node.name)
            if entry is None:
                entry = shards[node.name] = (self.cluster.get_redis_connection(node), [])
            entry[1].append(i)
        results: list[Any] = [None] * len(commands)
        for client, indexes in shards.values():
            answers = self._pipeline(client, [commands[i][1] for i in indexes])
            for i, result in zip(indexes, answers, strict=True):
                results[i] = result
        return results

    @staticmethod
    def _pipeline(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        results: list[Any] = []
        for start in range(0, len(commands), BATCH):
            pipe = client.pipeline(transaction=False)
            for command in commands[start:start + BATCH]:
                pipe.execute_command(*command)
            results += pipe.execute(raise_on_error=False)
        for result in results:
            if isinstance(result, Exception):
                raise result
        return results

    def ping(self) -> None:
        """Raise unless the server (every primary of a cluster) answers."""
        if self.cluster is None:
            self.client.ping()
        else:
            for node in self.cluster.get_primaries():
                self.cluster.get_redis_connection(node).ping()

    # -- subscriptions ----------------------------------------------------------

    @property
    def is_cluster(self) -> bool:
        """True for a Redis Cluster."""
        return self.cluster is not None

    def shards(self) -> list[str]:
        """The shards a worker subscribes on, by name (``""`` for a single server)."""
        if self.cluster is None:
            return [""]
        return [node.name for node in self.cluster.get_primaries()]

    def shard_of(self, channel: str) -> str:
        """The shard that carries ``channel``."""
        return "" if self.cluster is None else str(self._node(channel).name)

    def subscriber(self, shard: str) -> Any:
        """A new, connected redis-py ``Connection`` to ``shard``, for subscriptions."""
        if self.cluster is None:
            pool = self.client.connection_pool
        else:
            node = self.cluster.get_node(node_name=shard)
            pool = self.cluster.get_redis_connection(node).connection_pool
        conn = pool.connection_class(**dict(pool.connection_kwargs,
                                            socket_timeout=self.subscriber_timeout))
        conn.connect()
        return conn

    def close(self) -> None:
        """Close every connection of the clients."""
        with contextlib.suppress(Exception):
            if self.cluster is not None:
                self.cluster.close()
            else:
                self.client.close()
                self.client.connection_pool.disconnect()


class Owner(Protocol):
    """What a :class:`Subscription` reports to (the backend)."""

    closed: bool
    channels: set[str]

    def deliver(self, payload: bytes) -> None: ...

    def trouble(self, exc: BaseException, generation: int) -> None: ...


class Subscription:
    """One subscription connection (one per shard) and the loop that reads it.

    Commands go out under a lock (the writer subscribes, the monitor pings);
    the replies and messages come back to :meth:`read`, which runs in its
    own greenlet until the connection fails or closes.
    """

    def __init__(self, owner: Owner, client: RedisClient, conn: Any, generation: int) -> None:
        self.owner = owner
        self.client = client
        self.conn = conn
        self.generation = generation
        self.pending: dict[str, int] = {}  # channel -> unsubscribes not confirmed yet
        self._lock = threading.Lock()

    def send(self, commands: list[tuple[Any, ...]]) -> None:
        """Write ``commands`` (their replies go to :meth:`read`)."""
        if commands:
            with self._lock:
                self.conn.send_packed_command(self.conn.pack_commands(commands),
                                              check_health=False)

    def change(self, subscribe: bool, channels: list[str]) -> None:
        """Subscribe to ``channels``, or unsubscribe from them."""
        name = self.client.subscribe if subscribe else self.client.unsubscribe
        if not subscribe:
            for channel in channels:
                self.pending[channel] = self.pending.get(channel, 0) + 1
        if self.client.is_cluster:  # a shard channel command names one slot
            self.send([(name, channel) for channel in channels])
        else:
            self.send([(name, *channels[i:i + BATCH]) for i in range(0, len(channels), BATCH)])

    def read(self) -> None:
        """Hand each message to the owner until the connection fails or closes."""
        owner = self.owner
        try:
            while not owner.closed:
                reply = self.conn.read_response()
                if not isinstance(reply, list) or not reply:
                    continue
                kind = reply[0]
                if kind in (b"message", b"smessage") and len(reply) == 3:
                    owner.deliver(reply[2])
                elif kind in (b"unsubscribe", b"sunsubscribe") and len(reply) >= 2:
                    channel = text(reply[1])
                    if self.pending.get(channel):
                        self.pending[channel] -= 1
                    elif channel in owner.channels:  # not asked for: its slot moved
                        raise ConnectionError(f"Redis ended the subscription to {channel}")
        except Exception as exc:
            owner.trouble(exc, self.generation)

    def close(self) -> None:
        """Drop the connection (:meth:`read` then returns)."""
        with contextlib.suppress(Exception):
            self.conn.disconnect()
