"""The answers to queries from what Redis holds (the other nodes' share).

Each query's share comes in at most two round trips (per shard): one read
of an index (the members of a uid or a group, or the registry of nodes),
then, for every node named there, one pipeline on that node's slot that
checks it is alive (its ``alive`` key exists and its channel has a
subscriber) and reads what the query needs. The shares have the shape of
:data:`geworker.messaging.local.QUERIES`' own answers, so they merge with
this process's share the same way.

Index entries of a node that is not alive are left out; those of a dead
node (its channel has no subscriber: its process is gone, not merely slow
or cut off, which keeps the subscription until Redis drops the connection)
are listed so the caller can remove them (:attr:`Reader.stale`). A node
that was only reconnecting finds the mark the removal leaves and writes its
entries again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..transport.membership import NODE_LENGTH
from .redis_client import Command, RedisClient, subscriber_count, text
from .redis_layout import DATA_TTL, Layout, decode_record

__all__ = ["Reader"]

_Extra = Callable[[str], list[tuple[Any, ...]]]


class Reader:
    """Reads the other nodes' presence for one query (or one look for dead nodes).

    Args:
        client: the Redis client to read with.
        layout: the key names.
        own: this process's node (its entries are left out: it answers for itself).
    """

    def __init__(self, client: RedisClient, layout: Layout, own: str) -> None:
        self.client = client
        self.layout = layout
        self.own = own
        #: Commands that remove the index entries of dead nodes seen on the way.
        self.stale: list[Command] = []

    def nodes(self) -> list[str]:
        """Every node of the registry but this one."""
        key = self.layout.nodes
        return [n for n in map(text, self.client.run([(key, ("SMEMBERS", key))])[0])
                if n != self.own]

    def per_node(self, nodes: Iterable[str], extra: _Extra | None = None
                 ) -> tuple[dict[str, list[Any]], list[str]]:
        """(the results of ``extra(node)`` for each live node, the dead nodes), in one round."""
        layout, client = self.layout, self.client
        commands: list[Command] = []
        spans: list[tuple[str, int, int]] = []
        for node in nodes:
            home = layout.alive(node)
            more = extra(node) if extra is not None else []
            spans.append((node, len(commands), len(more)))
            commands.append((home, ("EXISTS", home)))
            commands.append((home, (client.numsub, layout.node_channel(node))))
            commands += [(home, command) for command in more]
        results = client.run(commands)
        live: dict[str, list[Any]] = {}
        dead: list[str] = []
        for node, start, count in spans:
            exists = bool(results[start])
            subscribed = subscriber_count(results[start + 1]) > 0
            if exists and subscribed:
                live[node] = results[start + 2:start + 2 + count]
            elif not subscribed:  # its process is gone (a slow one keeps its subscription)
                dead.append(node)
        return live, dead

    def members(self, key: str, extra: Callable[[str, list[str]], list[tuple[Any, ...]]]
                | None = None) -> dict[str, tuple[list[str], list[Any]]]:
        """node -> (client ids, results of ``extra``) of the live members of index ``key``."""
        by_node: dict[str, list[str]] = {}
        for member in self.client.run([(key, ("SMEMBERS", key))])[0]:
            cid = text(member)
            if cid[:NODE_LENGTH] != self.own:
                by_node.setdefault(cid[:NODE_LENGTH], []).append(cid)
        if not by_node:
            return {}
        live, dead = self.per_node(
            by_node, None if extra is None else (lambda node: extra(node, by_node[node])))
        if dead:
            layout = self.layout
            self.stale.append((key, ("SREM", key, *(c for n in dead for c in by_node[n]))))
            # The node, should it come back, is told to write its entries again.
            self.stale += [(layout.alive(n), ("SET", layout.reaped(n), "1", "EX", DATA_TTL))
                           for n in dead]
        return {node: (by_node[node], results) for node, results in live.items()}

    def records(self, key: str) -> dict[str, dict[str, Any]]:
        """client id -> record (uid, groups, session) of the live members of index ``key``."""
        conns = self.layout.conns
        members = self.members(key, lambda node, cids: [("HMGET", conns(node), *cids)])
        records: dict[str, dict[str, Any]] = {}
        for cids, (values,) in members.values():
            for cid, value in zip(cids, values or (), strict=False):
                record = decode_record(value)
                if record is not None:
                    records[cid] = record
        return records

    def share(self, name: str, params: list[Any]) -> Any:
        """The other nodes' share of the answer to query ``name``."""
        layout = self.layout
        if name in ("is_online", "uid_of", "session_of"):
            cid = params[0]
            node = cid[:NODE_LENGTH]
            live, _ = self.per_node([node], lambda n: [("HGET", layout.conns(n), cid)])
            record = decode_record(live[node][0]) if node in live else None
            if record is None:
                return None
            if name == "is_online":
                return True
            return record.get("u") if name == "uid_of" else record.get("s")
        if name in ("is_uid_online", "client_ids_of_uid"):
            cids = sorted(c for ids, _ in self.members(layout.uid(params[0])).values()
                          for c in ids)
            return bool(cids) if name == "is_uid_online" else cids
        if name == "group_size":
            return sum(len(ids) for ids, _ in self.members(layout.group(params[0])).values())
        if name == "group_members":
            return {cid: r.get("s") or {} for cid, r in self.records(
                layout.group(params[0])).items()}
        if name == "uids_in_group":
            return [r["u"] for r in self.records(layout.group(params[0])).values()
                    if isinstance(r.get("u"), str)]
        if name == "online_count":
            live, _ = self.per_node(self.nodes(), lambda n: [("HLEN", layout.conns(n))])
            return sum(int(results[0] or 0) for results in live.values())
        if name not in ("uids", "groups"):
            raise ValueError(f"no query {name!r}")
        key_of = layout.node_uids if name == "uids" else layout.node_groups
        live, _ = self.per_node(self.nodes(), lambda n: [("SMEMBERS", key_of(n))])
        return sorted({text(item) for results in live.values() for item in results[0] or ()})
