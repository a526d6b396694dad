"""Where the Redis backend keeps things: its URLs, and the names of its keys and channels.

Sans-IO (no redis-py, no sockets): :func:`parse_url` turns a ``messaging``
setting into :class:`RedisSettings`, and :class:`Layout` names every key and
channel the backend uses (``gw`` is the default prefix; ``N`` is a node, the
12 hex digits at the start of each client id of one worker process)::

    gw:{N}          string, TTL  the node is alive (refreshed every REFRESH seconds)
    gw:{N}:c        hash         client id -> {"u": uid, "g": [groups], "s": session}
    gw:{N}:u        set          the uids bound on the node
    gw:{N}:g        set          the groups with members on the node
    gw:{N}:reaped   string       left by the process that cleaned up after the node
    gw:u:{uid}      set          client ids bound to the uid (every node)
    gw:g:{group}    set          client ids in the group (every node)
    gw:nodes        set          the registry of nodes, for the whole-cluster queries

    gw:to:{N}       channel      frames for one client of node N (routed operations)
    gw:to-u:{uid}   channel      frames for a uid (subscribed while the node holds it)
    gw:to-g:{group} channel      frames for a group (subscribed while it has members there)
    gw:to-all       channel      send_to_all and Server.broadcast(all_workers=True)

The braces are Redis Cluster hash tags: every key and the channel of a node
sit on one slot (so a node's writes and its liveness check are one round
trip to one shard), and the keys and channels of different uids and groups
spread over the shards. With Redis Cluster the channels are shard channels
(``SSUBSCRIBE``/``SPUBLISH``), so delivery is spread over the shards too.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

from ..errors import ConfigurationError

__all__ = ["DATA_TTL", "DEFAULT_PORT", "DEFAULT_PREFIX", "Layout", "RedisSettings", "decode_record",
           "encode_record", "parse_url"]

DEFAULT_PORT = 6379
DEFAULT_PREFIX = "gw"
#: Seconds a node's data keys (and the mark a cleanup leaves) outlive their last
#: refresh; the entries of a dead node are removed well before (see the backend).
DATA_TTL = 3600

_SCHEMES = {"redis": (False, False), "rediss": (False, True),
            "redis+cluster": (True, False), "rediss+cluster": (True, True),
            "unix": (False, False)}
_CERT_REQS = ("none", "optional", "required")
_OPTIONS = ("prefix", "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "db")


@dataclasses.dataclass(frozen=True)
class RedisSettings:
    """What a Redis ``messaging`` URL says.

    Attributes:
        cluster: a Redis Cluster (``redis+cluster://``, ``rediss+cluster://``).
        tls: TLS to every node (``rediss://``).
        nodes: ``(host, port)`` of the server, or of the cluster's start nodes.
        unix_path: the server's unix socket (``unix://``), or None.
        db: the database number (standalone only).
        username, password: AUTH (an ACL user and its password), or None.
        prefix: the first part of every key and channel name.
        ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile: TLS options.
    """

    cluster: bool
    tls: bool
    nodes: tuple[tuple[str, int], ...]
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    prefix: str = DEFAULT_PREFIX
    ssl_cert_reqs: str = "required"
    ssl_ca_certs: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    def redacted(self) -> str:
        """The URL without its password, for logs and ``status``."""
        scheme = ("rediss" if self.tls else "redis") + ("+cluster" if self.cluster else "")
        user = ""
        if self.username or self.password:
            user = quote(self.username or "", safe="") + (":***" if self.password else "") + "@"
        if self.unix_path is not None:
            return f"unix://{user}{self.unix_path}?db={self.db}"
        hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.nodes)
        return f"{scheme}://{user}{hosts}" + ("" if self.cluster else f"/{self.db}")

    def connection_options(self) -> dict[str, Any]:
        """Keyword arguments for redis-py's clients: credentials and TLS."""
        options: dict[str, Any] = {"username": self.username, "password": self.password}
        if self.tls:
            options.update(ssl=True, ssl_cert_reqs=self.ssl_cert_reqs,
                           ssl_ca_certs=self.ssl_ca_certs, ssl_certfile=self.ssl_certfile,
                           ssl_keyfile=self.ssl_keyfile,
                           ssl_check_hostname=self.ssl_cert_reqs == "required")
        return options


def _fail(url: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"messaging={url!r}: {why}")


def _port(url: str, text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise _fail(url, f"{text!r} is not a port") from None
    if not 0 < port < 65536:
        raise _fail(url, f"port {port} is out of range")
    return port


def _hosts(url: str, netloc: str) -> tuple[tuple[str, int], ...]:
    hosts = []
    for item in netloc.split(","):
        if not item:
            raise _fail(url, "an empty host")
        if item.startswith("["):  # [ipv6]:port
            host, _, rest = item[1:].partition("]")
            port = _port(url, rest[1:]) if rest.startswith(":") else DEFAULT_PORT
        elif item.count(":") == 1:
            host, _, text = item.partition(":")
            port = _port(url, text)
        else:
            host, port = item, DEFAULT_PORT
        if not host:
            raise _fail(url, "an empty host")
        hosts.append((host, port))
    return tuple(hosts)


def parse_url(url: str) -> RedisSettings:
    """The settings a Redis URL names.

    ``redis://[user:password@]host[:port][/db][?options]``, ``rediss://``
    (TLS), ``redis+cluster://host:port[,host:port...]``, ``rediss+cluster://``
    and ``unix://[user:password@]/path/to/redis.sock[?db=N]``. Options:
    ``prefix`` (default ``gw``), ``ssl_cert_reqs`` (``none``, ``optional``,
    ``required``: the default), ``ssl_ca_certs``, ``ssl_certfile``,
    ``ssl_keyfile``. The user and password are percent-decoded.

    Raises:
        ConfigurationError: saying what is wrong with ``url``.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in _SCHEMES:
        raise _fail(url, "not a Redis URL (redis://, rediss://, redis+cluster://, "
                         "rediss+cluster://, unix://)")
    cluster, tls = _SCHEMES[scheme]
    parts = urlsplit("x://" + rest)
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        auth, _, netloc = netloc.rpartition("@")
        user, has_password, secret = auth.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in _OPTIONS:
            raise _fail(url, f"unknown option {key!r} (known: {', '.join(_OPTIONS)})")
        options[key] = value
    prefix = options.get("prefix", DEFAULT_PREFIX)
    if not prefix or any(c in prefix for c in "{}: \r\n"):
        raise _fail(url, f"prefix={prefix!r}: use letters, digits, '-', '_' or '.'")
    cert_reqs = options.get("ssl_cert_reqs", "required")
    if cert_reqs not in _CERT_REQS:
        raise _fail(url, f"ssl_cert_reqs={cert_reqs!r}: use one of {', '.join(_CERT_REQS)}")
    db_text = options.get("db", "")
    unix_path = None
    if scheme == "unix":
        unix_path = unquote(parts.path)
        if not unix_path.startswith("/"):
            raise _fail(url, "unix:// needs an absolute socket path (unix:///run/redis.sock)")
        nodes: tuple[tuple[str, int], ...] = ()
    else:
        nodes = _hosts(url, netloc)
        path = parts.path.strip("/")
        if path:
            if cluster:
                raise _fail(url, "a Redis Cluster has one database: drop the /db")
            db_text = path
        if not cluster and len(nodes) > 1:
            raise _fail(url, "one host for a standalone Redis (redis+cluster:// for several)")
    try:
        db = int(db_text or 0)
    except ValueError:
        raise _fail(url, f"database {db_text!r} is not a number") from None
    if db < 0:
        raise _fail(url, f"database {db} is negative")
    return RedisSettings(cluster=cluster, tls=tls, nodes=nodes, unix_path=unix_path, db=db,
                         username=username, password=password, prefix=prefix,
                         ssl_cert_reqs=cert_reqs, ssl_ca_certs=options.get("ssl_ca_certs"),
                         ssl_certfile=options.get("ssl_certfile"),
                         ssl_keyfile=options.get("ssl_keyfile"))


class Layout:
    """The names of the backend's keys and channels (see the module doc).

    Args:
        prefix: the first part of every name.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        #: The registry of nodes.
        self.nodes = f"{prefix}:nodes"
        #: The channel of ``send_to_all`` and broadcasts.
        self.all_channel = f"{prefix}:to-all"

    # -- one node's keys (one slot: the node is the hash tag) ----------------

    def alive(self, node: str) -> str:
        """The key whose existence (TTL) says ``node`` is alive."""
        return f"{self.prefix}:{{{node}}}"

    def conns(self, node: str) -> str:
        """Hash: client id -> record of every message connection of ``node``."""
        return f"{self.prefix}:{{{node}}}:c"

    def node_uids(self, node: str) -> str:
        """Set: the uids bound on ``node``."""
        return f"{self.prefix}:{{{node}}}:u"

    def node_groups(self, node: str) -> str:
        """Set: the groups with members on ``node``."""
        return f"{self.prefix}:{{{node}}}:g"

    def reaped(self, node: str) -> str:
        """Set by the process that removed a node's entries (the node then writes them again)."""
        return f"{self.prefix}:{{{node}}}:reaped"

    def reaping(self, node: str) -> str:
        """Held while one process removes a dead node's entries."""
        return f"{self.prefix}:{{{node}}}:reaping"

    def node_channel(self, node: str) -> str:
        """The channel of the frames for one client of ``node``."""
        return f"{self.prefix}:to:{{{node}}}"

    # -- indexes across nodes (one slot per uid or group) --------------------

    def uid(self, uid: str) -> str:
        """Set: every client id bound to ``uid``."""
        return f"{self.prefix}:u:{{{uid}}}"

    def group(self, group: str) -> str:
        """Set: every client id in ``group``."""
        return f"{self.prefix}:g:{{{group}}}"

    def uid_channel(self, uid: str) -> str:
        """The channel of the frames for ``uid``."""
        return f"{self.prefix}:to-u:{{{uid}}}"

    def group_channel(self, group: str) -> str:
        """The channel of the frames for ``group``."""
        return f"{self.prefix}:to-g:{{{group}}}"


def encode_record(uid: str | None, groups: Iterable[str], session: str) -> str:
    """A connection's entry in its node's ``c`` hash (``session`` is already JSON)."""
    return f'{{"u":{json.dumps(uid)},"g":{json.dumps(sorted(groups))},"s":{session}}}'


def decode_record(value: Any) -> dict[str, Any] | None:
    """An entry of a ``c`` hash as a dict (``u``, ``g``, ``s``), or None if it is not one."""
    try:
        record = json.loads(value)
    except (TypeError, ValueError):
        return None
    return record if isinstance(record, dict) else None
