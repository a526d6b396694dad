"""``Messenger``: the messaging API as an object, inside a worker or in any other process."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError, LocalProtocolError
from ..transport.membership import Session, check_name
from .backend import DEFAULT_TIMEOUT, Backend
from .wire import Op

__all__ = ["Messenger"]


def _client_ids(exclude: Any) -> list[str]:
    """Client ids from an ``exclude`` argument: ids, connections, or one of either."""
    if exclude is None:
        return []
    if isinstance(exclude, str) or hasattr(exclude, "client_id"):
        exclude = [exclude]
    ids = []
    for item in exclude:
        item = getattr(item, "client_id", item)
        if not isinstance(item, str):
            raise LocalProtocolError(f"exclude holds client ids or connections, not {item!r}")
        ids.append(item)
    return ids


def _client(client_id: Any) -> str:
    return str(getattr(client_id, "client_id", client_id))


class Messenger:
    """Send to and ask about any connection of an instance, from anywhere.

    Inside a worker, use the module functions (``geworker.messaging.send_to_uid``
    and the rest): they call the worker's own Messenger. In any other process
    (a script, a cron job, a Flask app, a Celery task) make one::

        messenger = Messenger(app="chat:app")           # embedded: found like `geworker status`
        messenger = Messenger(run_dir=".geworker/chat-app-1a2b3c")
        messenger = Messenger("redis://127.0.0.1:6379/0")  # the Redis backend

    Every send returns True when the message was handed on (to a local
    connection, another worker or Redis) and False when its target cannot
    exist (a malformed client id, a worker that is gone) or Redis cannot be
    reached (counted as ``send_failures``; ``docs/messaging-redis.md``).
    Delivery is at most once. Queries answer for the whole instance
    (embedded) or cluster (Redis); processes that do not answer within
    ``timeout`` seconds, or Redis when it does not, are left out of the
    answer (and counted as ``query_timeouts``).

    Raises:
        ConfigurationError: when no running instance is found, for a bad
            Redis URL, or when redis-py is not installed.
    """

    def __init__(self, url: str | None = None, *, app: str | None = None,
                 run_dir: str | os.PathLike[str] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, backend: Backend | None = None) -> None:
        if backend is None:
            backend = _outside_backend(url, app, run_dir, timeout)
        self.backend = backend

    # -- sends ------------------------------------------------------------------

    def send_to_client(self, client_id: str, message: str | bytes) -> bool:
        """Send ``message`` to one connection (``Gateway::sendToClient``)."""
        return self.backend.send(Op.CLIENT, [_client(client_id)], message)

    def send_to_uid(self, uid: str, message: str | bytes, exclude: Iterable[Any] = ()) -> bool:
        """Send ``message`` to every connection bound to ``uid`` (``Gateway::sendToUid``)."""
        return self.backend.send(Op.UID, [check_name("uid", uid), _client_ids(exclude)],
                                 message)

    def send_to_group(self, group: str, message: str | bytes,
                      exclude: Iterable[Any] = ()) -> bool:
        """Send ``message`` to every member of ``group`` but the excluded client ids."""
        return self.backend.send(Op.GROUP, [check_name("group", group), _client_ids(exclude)],
                                 message)

    def send_to_all(self, message: str | bytes, exclude: Iterable[Any] = (),
                    server: str | None = None) -> bool:
        """Send ``message`` to every message connection (of the server named ``server``)."""
        return self.backend.send(Op.ALL, [server, _client_ids(exclude)], message)

    def close_client(self, client_id: str, message: str | bytes | None = None) -> bool:
        """Close one connection, after a last ``message`` if given (``Gateway::closeClient``)."""
        return self.backend.send(Op.CLOSE, [_client(client_id)], message)

    def ungroup(self, group: str) -> None:
        """Remove every member from ``group`` (``Gateway::ungroup``)."""
        self.backend.send(Op.UNGROUP, [check_name("group", group)])

    def bind_uid(self, client_id: str, uid: str) -> bool:
        """Bind a connection, wherever it is, to ``uid`` (``Gateway::bindUid``)."""
        return self.backend.send(Op.BIND, [_client(client_id), check_name("uid", uid)])

    def unbind_uid(self, client_id: str) -> bool:
        """Forget the uid of a connection (``Gateway::unbindUid``)."""
        return self.backend.send(Op.UNBIND, [_client(client_id)])

    def join_group(self, client_id: str, group: str) -> bool:
        """Add a connection, wherever it is, to ``group`` (``Gateway::joinGroup``)."""
        return self.backend.send(Op.JOIN, [_client(client_id), check_name("group", group)])

    def leave_group(self, client_id: str, group: str) -> bool:
        """Remove a connection from ``group`` (``Gateway::leaveGroup``)."""
        return self.backend.send(Op.LEAVE, [_client(client_id), check_name("group", group)])

    def set_session(self, client_id: str, session: dict[str, Any]) -> bool:
        """Replace a connection's session (``Gateway::setSession``)."""
        return self.backend.send(Op.SESSION, [_client(client_id), dict(Session(session)), False])

    def update_session(self, client_id: str, changes: dict[str, Any]) -> bool:
        """Merge ``changes`` into a connection's session (``Gateway::updateSession``)."""
        return self.backend.send(Op.SESSION, [_client(client_id), dict(Session(changes)), True])

    # -- queries --------------------------------------------------------------------

    def is_online(self, client_id: str) -> bool:
        """True if the connection is open (``Gateway::isOnline``)."""
        return bool(self.backend.query("is_online", (_client(client_id),)))

    def uid_of(self, client_id: str) -> str | None:
        """The uid bound to a connection, or None (``Gateway::getUidByClientId``)."""
        return self.backend.query("uid_of", (_client(client_id),))  # type: ignore[no-any-return]

    def session_of(self, client_id: str) -> dict[str, Any] | None:
        """A connection's session, or None when it is not open (``Gateway::getSession``)."""
        return self.backend.query("session_of",  # type: ignore[no-any-return]
                                  (_client(client_id),))

    def is_uid_online(self, uid: str) -> bool:
        """True if any connection is bound to ``uid`` (``Gateway::isUidOnline``)."""
        return bool(self.backend.query("is_uid_online", (uid,)))

    def client_ids_of_uid(self, uid: str) -> list[str]:
        """The connections bound to ``uid`` (``Gateway::getClientIdByUid``)."""
        return list(self.backend.query("client_ids_of_uid", (uid,)))

    def group_size(self, group: str) -> int:
        """How many connections are in ``group`` (``Gateway::getClientIdCountByGroup``)."""
        return int(self.backend.query("group_size", (group,)))

    def uids_in_group(self, group: str) -> list[str]:
        """The uids of the members of ``group`` (``Gateway::getUidListByGroup``)."""
        return list(self.backend.query("uids_in_group", (group,)))

    def group_members(self, group: str) -> dict[str, dict[str, Any]]:
        """client id -> session of every member (``Gateway::getClientSessionsByGroup``)."""
        return dict(self.backend.query("group_members", (group,)))

    def online_count(self) -> int:
        """How many message connections are open (``Gateway::getAllClientIdCount``)."""
        return int(self.backend.query("online_count", ()))

    def uids(self) -> list[str]:
        """Every bound uid (``Gateway::getAllUidList``)."""
        return list(self.backend.query("uids", ()))

    def groups(self) -> list[str]:
        """Every group with at least one member (``Gateway::getAllGroupIdList``)."""
        return list(self.backend.query("groups", ()))

    def describe(self) -> dict[str, Any]:
        """The backend's state and counts (what ``geworker status`` shows)."""
        return self.backend.describe()

    def close(self) -> None:
        """Close the backend's connections."""
        self.backend.close()

    def __enter__(self) -> Messenger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _outside_backend(url: str | None, app: str | None, run_dir: Any,
                     timeout: float) -> Backend:
    if url:
        from .backends import backend_for_url

        return backend_for_url(url, listen=False, timeout=timeout)
    from .. import rundir
    from .embedded import EmbeddedBackend

    path = Path(run_dir) if run_dir is not None else rundir.find_instance(os.getcwd(), app)
    try:
        return EmbeddedBackend(path, listen=False, synchronous=True, timeout=timeout)
    except OSError as exc:
        raise ConfigurationError(f"no running geworker instance in {path}: {exc}") from None
