"""What a messaging frame does in the process that receives it, and the answers to queries.

Every backend ends here: a send from this worker to its own connections, a
frame from another worker or from Redis, and a query's share of the answer
all run the same functions, on this process's connections and their index
(:mod:`geworker.transport.membership`). Nothing here waits or does I/O.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from ..errors import LocalProtocolError
from ..stats import counters
from ..transport.membership import Session, check_name, membership, parse_client_id
from ..transport.runtime import all_runtimes
from .wire import Frame, Op

__all__ = ["QUERIES", "answer", "execute", "find", "merge", "message_connections"]


def message_connections(server: str | None = None) -> Iterator[Any]:
    """This process's open message connections (of server ``server``, if named)."""
    for runtime in all_runtimes():
        if server is None or runtime.server.name == server:
            for conn in list(runtime.connections.values()):
                if conn.accepts_messages:
                    yield conn


def find(client_id: Any) -> Any:
    """The connection of ``client_id`` if this process holds it, else None."""
    parsed = parse_client_id(client_id)
    if parsed is None or parsed[0] != membership.node:
        return None
    for runtime in all_runtimes():
        conn = runtime.connections.get(parsed[1])
        if conn is not None and conn.accepts_messages:
            return conn
    return None


def _deliver(conns: Any, message: Any) -> int:
    sent = 0
    for conn in conns:
        try:
            if conn.send(message):
                sent += 1
            else:
                counters.errors["messages_dropped"] += 1
        except LocalProtocolError as exc:  # a protocol that cannot carry this message
            counters.errors["messages_dropped"] += 1
            conn.log.info("geworker: message for %s dropped: %s", conn.client_id, exc)
    return sent


def execute(frame: Frame) -> int:
    """Carry out ``frame`` on this process's connections; returns how many it reached."""
    op, args = frame.op, frame.args
    if op is Op.CLIENT or op is Op.CLOSE:
        conn = find(args[0])
        if conn is None:
            counters.errors["messages_dropped"] += op is Op.CLIENT
            return 0
        if op is Op.CLOSE:
            conn.close(frame.payload)
            return 1
        return _deliver((conn,), frame.payload)
    if op is Op.UID:
        skip = membership.local_ids(args[1])
        conns = [c for c in membership.uids.get(args[0], {}).values() if c.id not in skip]
        return _deliver(conns, frame.payload)
    if op is Op.GROUP:
        return _deliver(list(membership.members(args[0], args[1])), frame.payload)
    if op is Op.ALL:
        skip = membership.local_ids(args[1])
        return _deliver([c for c in message_connections(args[0]) if c.id not in skip],
                        frame.payload)
    if op is Op.UNGROUP:
        return membership.ungroup(args[0])
    conn = find(args[0])
    if conn is None:
        return 0
    if op is Op.BIND:
        conn.bind_uid(args[1])
    elif op is Op.UNBIND:
        conn.unbind_uid()
    elif op is Op.JOIN:
        with contextlib.suppress(LocalProtocolError):  # full: refused like conn.join would be
            conn.join(args[1])
    elif op is Op.LEAVE:
        conn.leave(args[1])
    elif op is Op.SESSION:
        with contextlib.suppress(LocalProtocolError):
            if args[2]:
                conn.session.update(args[1])
            else:
                conn.session = Session(args[1])
    return 1


# -- queries: this process's share, and how shares combine -------------------

def _of_client(attribute: Callable[[Any], Any]) -> Callable[[list[Any]], Any]:
    def local(params: list[Any]) -> Any:
        conn = find(params[0])
        return None if conn is None else attribute(conn)
    return local


def _sorted_union(answers: list[Any]) -> list[Any]:
    return sorted({item for answer in answers if answer for item in answer})


def _first(answers: list[Any]) -> Any:
    return next((a for a in answers if a is not None), None)


def _merge_dicts(answers: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for answer in answers:
        merged.update(answer or {})
    return merged


def _group(params: list[Any]) -> dict[int, Any]:
    return membership.groups.get(params[0], {})


#: name -> (argument kinds, this process's answer, how answers combine, the empty answer)
QUERIES: dict[str, tuple[tuple[str, ...], Callable[[list[Any]], Any],
                         Callable[[list[Any]], Any], Any]] = {
    "is_online": (("client_id",), _of_client(lambda c: True), any, False),
    "uid_of": (("client_id",), _of_client(lambda c: c.uid), _first, None),
    "session_of": (("client_id",), _of_client(lambda c: dict(c.session)), _first, None),
    "is_uid_online": (("uid",), lambda p: p[0] in membership.uids, any, False),
    "client_ids_of_uid": (("uid",), lambda p: [c.client_id for c in
                                               membership.uids.get(p[0], {}).values()],
                          _sorted_union, []),
    "group_size": (("group",), lambda p: len(_group(p)), sum, 0),
    "uids_in_group": (("group",), lambda p: [c.uid for c in _group(p).values()
                                             if c.uid is not None], _sorted_union, []),
    "group_members": (("group",), lambda p: {c.client_id: dict(c.session)
                                             for c in _group(p).values()}, _merge_dicts, {}),
    "online_count": ((), lambda p: sum(1 for _ in message_connections()), sum, 0),
    "uids": ((), lambda p: list(membership.uids), _sorted_union, []),
    "groups": ((), lambda p: list(membership.groups), _sorted_union, []),
}


def answer(name: str, params: list[Any]) -> Any:
    """This process's share of the answer to query ``name``."""
    return QUERIES[name][1](params)


def merge(name: str, answers: list[Any]) -> Any:
    """The whole answer from the shares of every process that answered."""
    return QUERIES[name][2](answers)


def check_params(name: str, params: tuple[Any, ...]) -> list[Any] | None:
    """The parameters of a query as sent, or None when they cannot match anything.

    A client id that is not well-formed matches nothing (the empty answer,
    not an error); a uid or group that is not a valid name raises.
    """
    kinds = QUERIES[name][0]
    for kind, value in zip(kinds, params, strict=True):
        if kind == "client_id":
            if parse_client_id(value) is None:
                return None
        else:
            check_name(kind, value)
    return list(params)
