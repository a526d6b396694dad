"""Reach any connection from anywhere: client ids, uids, groups and sessions.

Inside a worker, call these functions from any callback, timer or greenlet::

    from geworker import messaging

    @server.on_message
    def on_message(conn, message):
        conn.bind_uid("ann")          # conn.join("room:1"), conn.session["name"] = "Ann"
        messaging.send_to_uid("bob", "hi from ann")
        messaging.send_to_group("room:1", message, exclude=[conn])

They reach every worker of the instance with the embedded backend (the
default: no service needed) and every instance on every machine with the
Redis backend (``messaging="redis://..."``). Outside a worker, a
:class:`Messenger` offers the same methods. The guide's messaging page
(``docs/messaging.md``) has the semantics, the limits and the mapping from
GatewayWorker's ``Gateway::*``.

Sends: :func:`send_to_client`, :func:`send_to_uid`, :func:`send_to_group`,
:func:`send_to_all`, :func:`close_client`, :func:`ungroup`, :func:`bind_uid`,
:func:`unbind_uid`, :func:`join_group`, :func:`leave_group`,
:func:`set_session`, :func:`update_session`.
Queries: :func:`is_online`, :func:`uid_of`, :func:`session_of`,
:func:`is_uid_online`, :func:`client_ids_of_uid`, :func:`group_size`,
:func:`uids_in_group`, :func:`group_members`, :func:`online_count`,
:func:`uids`, :func:`groups`.
"""

from __future__ import annotations

import functools
from typing import Any

from .backend import Backend
from .messenger import Messenger
from .wire import MAX_MESSAGE

__all__ = ["MAX_MESSAGE", "Messenger", "current", "install"]

_current: Messenger | None = None


def current() -> Messenger:
    """This process's Messenger: the worker's, or one that reaches only this process."""
    global _current
    if _current is None:
        _current = Messenger(backend=Backend())
    return _current


def install(messenger: Messenger | None) -> None:
    """Make ``messenger`` this process's (the worker does it when it starts)."""
    global _current
    _current = messenger


_API = ["send_to_client", "send_to_uid", "send_to_group", "send_to_all", "close_client",
        "ungroup", "bind_uid", "unbind_uid", "join_group", "leave_group", "set_session",
        "update_session", "is_online", "uid_of", "session_of", "is_uid_online",
        "client_ids_of_uid", "group_size", "uids_in_group", "group_members",
        "online_count", "uids", "groups"]


def _delegate(name: str) -> Any:
    @functools.wraps(getattr(Messenger, name))
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(current(), name)(*args, **kwargs)
    return call


for _name in _API:
    globals()[_name] = _delegate(_name)
    __all__.append(_name)
del _name
