"""Who is who among this process's connections: client ids, uids, groups, sessions.

Messaging (:mod:`geworker.messaging`) reaches connections by *client id*
(one connection), *uid* (the application's user id, bound to any number of
connections: a phone and a laptop) and *group* (a room, a topic). Across
processes that is routing; inside one process it is this index, which the
connections keep up to date themselves (``conn.bind_uid``, ``conn.join``)
and which forgets a connection when it closes.

A client id is the process's *node* (12 hex digits, random per worker
process, so ids never repeat across workers, reloads, instances or machines)
followed by the connection's ``id`` in hex: short, and enough for any
process to tell which worker holds it.

Only *message connections* take part: WebSocket (upgraded ``http://``
included), text, frame, tcp, unix and custom protocols. A plain HTTP
connection answers requests; it is never a target of a push.

A backend that keeps a copy of this index elsewhere (Redis) sets
:attr:`Membership.observer`: it is called with a connection whenever that
connection opens, closes, binds, joins, leaves or changes its session, and
must only take note (the copy is written later, by its own greenlet).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import LocalProtocolError

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "MAX_GROUPS_PER_CONNECTION",
    "MAX_NAME_LENGTH",
    "MAX_SESSION_BYTES",
    "NODE_LENGTH",
    "Membership",
    "Session",
    "check_name",
    "membership",
    "parse_client_id",
]

#: Hex digits of a node (a worker process) at the start of every client id.
NODE_LENGTH = 12
#: Longest uid or group name, in characters.
MAX_NAME_LENGTH = 256
#: Groups one connection may be in at once (a flood of joins is refused past it).
MAX_GROUPS_PER_CONNECTION = 256
#: Largest session, as JSON.
MAX_SESSION_BYTES = 64 * 1024


def check_name(kind: str, name: Any) -> str:
    """``name`` if it is a valid uid or group name, else raise ``LocalProtocolError``."""
    if not isinstance(name, str):
        raise LocalProtocolError(f"a {kind} is a str, not {type(name).__name__}")
    if not name or len(name) > MAX_NAME_LENGTH:
        raise LocalProtocolError(f"a {kind} has 1 to {MAX_NAME_LENGTH} characters, "
                                 f"not {len(name)}")
    return name


def parse_client_id(client_id: Any) -> tuple[str, int] | None:
    """``(node, connection id)`` of a well-formed client id, else None."""
    if (not isinstance(client_id, str) or len(client_id) <= NODE_LENGTH
            or len(client_id) > NODE_LENGTH + 16):
        return None
    try:
        return client_id[:NODE_LENGTH], int(client_id[NODE_LENGTH:], 16)
    except ValueError:
        return None


def _encode_session(data: Any) -> str:
    try:
        text = json.dumps(data, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise LocalProtocolError(f"a session holds JSON values only: {exc}") from None
    if len(text) > MAX_SESSION_BYTES:
        raise LocalProtocolError(f"a session is at most {MAX_SESSION_BYTES} bytes as JSON, "
                                 f"this one is {len(text)}")
    return text


class Session(dict):  # type: ignore[type-arg]
    """A connection's session: a dict of JSON values, checked as it is set.

    Other workers read it through queries (``group_members``, ``session_of``).
    Assigning a key or calling ``update`` checks that the whole session is
    still JSON and within :data:`MAX_SESSION_BYTES`; a change made inside a
    nested value (``session["tags"].append(...)``) is not seen until the
    session is assigned again (``conn.session = conn.session``).
    """

    #: The connection whose session this is (told of changes), or None.
    owner: Connection | None = None

    def __init__(self, data: Any = ()) -> None:
        super().__init__(data)
        _encode_session(self)

    def _changed(self) -> None:
        if self.owner is not None and membership.observer is not None:
            membership.observer(self.owner)

    def __setitem__(self, key: str, value: Any) -> None:
        old = self.get(key, _MISSING)
        super().__setitem__(key, value)
        try:
            _encode_session(self)
        except LocalProtocolError:
            if old is _MISSING:
                super().__delitem__(key)
            else:
                super().__setitem__(key, old)
            raise
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other: Any) -> Session:  # type: ignore[override,misc]
        self.update(other)
        return self

    def pop(self, *args: Any) -> Any:
        """Like ``dict.pop``."""
        value = super().pop(*args)
        self._changed()
        return value

    def popitem(self) -> tuple[Any, Any]:
        """Like ``dict.popitem``."""
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        """Like ``dict.clear``."""
        super().clear()
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        """Like ``dict.update``; the session is unchanged if the result is not valid."""
        saved = dict(self)
        super().update(*args, **kwargs)
        try:
            _encode_session(self)
        except LocalProtocolError:
            super().clear()
            super().update(saved)
            raise
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        """Like ``dict.setdefault``, checked like ``__setitem__``."""
        if key not in self:
            self[key] = default
        return self[key]


_MISSING = object()


class Membership:
    """The index of this process: uid -> connections, group -> connections."""

    def __init__(self) -> None:
        self.node = os.urandom(NODE_LENGTH // 2).hex()
        self.uids: dict[str, dict[int, Connection]] = {}
        self.groups: dict[str, dict[int, Connection]] = {}
        #: Called with a connection whose presence changed (see the module doc), or None.
        self.observer: Callable[[Connection], None] | None = None

    def new_node(self) -> str:
        """Start afresh with a new node: a worker calls it once it is forked."""
        self.__init__()  # type: ignore[misc]
        return self.node

    def client_id(self, conn: Connection) -> str:
        """The client id of one of this process's connections."""
        return f"{self.node}{conn.id:x}"

    def bind_uid(self, conn: Connection, uid: str) -> None:
        """Bind ``conn`` to ``uid`` (replacing the uid it had)."""
        if conn._uid == uid:
            return
        if conn._uid is not None:
            self.unbind_uid(conn)
        conn._uid = uid
        self.uids.setdefault(uid, {})[conn.id] = conn
        if self.observer is not None:
            self.observer(conn)

    def unbind_uid(self, conn: Connection) -> None:
        """Forget the uid of ``conn``, if it has one."""
        uid, conn._uid = conn._uid, None
        if uid is not None:
            _discard(self.uids, uid, conn.id)
            if self.observer is not None:
                self.observer(conn)

    def join(self, conn: Connection, group: str) -> None:
        """Add ``conn`` to ``group``."""
        groups = conn._groups
        if groups is None:
            groups = conn._groups = set()
        elif group in groups:
            return
        if len(groups) >= MAX_GROUPS_PER_CONNECTION:
            raise LocalProtocolError(f"a connection is in at most {MAX_GROUPS_PER_CONNECTION} "
                                     "groups at once")
        groups.add(group)
        self.groups.setdefault(group, {})[conn.id] = conn
        if self.observer is not None:
            self.observer(conn)

    def leave(self, conn: Connection, group: str) -> None:
        """Remove ``conn`` from ``group`` (nothing happens if it is not in it)."""
        if conn._groups is not None and group in conn._groups:
            conn._groups.discard(group)
            _discard(self.groups, group, conn.id)
            if self.observer is not None:
                self.observer(conn)

    def ungroup(self, group: str) -> int:
        """Empty ``group`` in this process; returns how many connections left it."""
        members = self.groups.pop(group, {})
        for conn in members.values():
            if conn._groups is not None:
                conn._groups.discard(group)
            if self.observer is not None:
                self.observer(conn)
        return len(members)

    def forget(self, conn: Connection) -> None:
        """Remove a closing connection from every uid and group."""
        self.unbind_uid(conn)
        for group in conn._groups or ():
            _discard(self.groups, group, conn.id)
        conn._groups = None

    def members(self, group: str, exclude: Iterable[str] = ()) -> Iterator[Connection]:
        """The connections of ``group`` in this process, without the excluded client ids."""
        conns = list(self.groups.get(group, {}).values())
        skip = self.local_ids(exclude)
        return (c for c in conns if c.id not in skip)

    def local_ids(self, client_ids: Iterable[str]) -> set[int]:
        """The connection ids of the client ids that belong to this process."""
        ids = set()
        for client_id in client_ids:
            parsed = parse_client_id(client_id)
            if parsed is not None and parsed[0] == self.node:
                ids.add(parsed[1])
        return ids


def _discard(index: dict[str, dict[int, Any]], key: str, conn_id: int) -> None:
    bucket = index.get(key)
    if bucket is not None:
        bucket.pop(conn_id, None)
        if not bucket:
            del index[key]


#: The index of the current process.
membership = Membership()
