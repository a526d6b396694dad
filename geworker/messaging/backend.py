"""What every messaging backend does the same way: local first, then the others.

A backend moves :mod:`~geworker.messaging.wire` frames between processes;
this base class decides where each goes. A frame for one client goes to the
process that holds it (its node is the first part of the client id); a frame
for a uid, a group or everyone runs here and goes to every other process;
a query gets this process's share at once and the others' within
``timeout`` seconds. Subclasses provide the transport: :meth:`_route`,
:meth:`_fan_out` and :meth:`_ask`.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from typing import Any

from ..stats import counters
from ..transport.membership import NODE_LENGTH, membership, parse_client_id
from . import local
from .wire import Frame, Op, check_message, encode

__all__ = ["DEFAULT_TIMEOUT", "Backend", "Gather"]

#: Seconds a query waits for the other processes' shares.
DEFAULT_TIMEOUT = 1.0
#: A backend logs a failure of the same kind at most this often (seconds).
WARN_EVERY = 10.0

_TO_ONE = frozenset({Op.CLIENT, Op.CLOSE, Op.BIND, Op.UNBIND, Op.JOIN, Op.LEAVE, Op.SESSION})


class Gather:
    """The shares of one query's answer as they arrive from other processes."""

    def __init__(self) -> None:
        self.missing: set[str] | None = None  # None until the query went out
        self.shares: dict[str, Any] = {}
        self.done = threading.Event()

    def expect(self, nodes: set[str]) -> None:
        """The query reached ``nodes``: wait for those that have not answered yet."""
        self.missing = nodes - self.shares.keys()
        if not self.missing:
            self.done.set()

    def add(self, node: str, answer: Any) -> None:
        """Record ``node``'s share (``answer`` None for a node that went away)."""
        self.shares.setdefault(node, answer)
        if self.missing is not None and node in self.missing:
            self.missing.discard(node)
            if not self.missing:
                self.done.set()

    def answers(self) -> list[Any]:
        """The shares that arrived, from the nodes the query reached."""
        return [a for node, a in self.shares.items() if a is not None]


class Backend:
    """The routing rules shared by every backend (see the module doc).

    Attributes:
        kind: ``"local"`` or ``"redis"`` (shown in ``status``).
        timeout: seconds a query waits for other processes.
        stats: counts shown in ``status`` and the metrics.
    """

    kind = "none"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, log: Any = None) -> None:
        self.timeout = timeout
        self.log = log or logging.getLogger("geworker")
        self.stats: dict[str, int] = {"relayed_out": 0, "relayed_in": 0, "dropped": 0,
                                      "query_timeouts": 0, "send_failures": 0,
                                      "reconnects": 0, "rejected_peers": 0}
        self._requests = itertools.count(1)  # (next() is atomic: a Messenger may be shared)
        self._gathers: dict[int, Gather] = {}
        self._warned: dict[str, float] = {}

    # -- what subclasses provide -------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the backend can reach the other processes."""
        return False

    def _route(self, node: str, data: bytes) -> bool:
        """Send a frame to process ``node``; False if it cannot be reached."""
        return False

    def _fan_out(self, data: bytes, op: Op, args: list[Any]) -> int:
        """Send frame ``data`` (``op`` with ``args``) to every other process.

        Returns how many took it, or -1 when it could not be handed on.
        """
        return 0

    def _ask(self, data: bytes, node: str | None) -> set[str]:
        """Send a query to ``node`` (None: to all others); the nodes it reached."""
        return set()

    def close(self) -> None:
        """Stop: no more frames in or out."""

    # -- sending -------------------------------------------------------------

    def send(self, op: Op, args: list[Any], message: Any = None, here: bool = True) -> bool:
        """Carry out ``op`` wherever its target is; True if it was handed on.

        ``here=False`` skips this process (its part was done already). For a
        uid, a group or everyone, False means this process did its part but
        the others could not be reached.
        """
        if message is not None:
            check_message(message)  # a wrong type or size fails here, at the call
        if op in _TO_ONE:
            parsed = parse_client_id(args[0])
            if parsed is None:
                return False
            if parsed[0] == membership.node:
                return local.execute(Frame(op, args, message)) > 0
            ok = self._route(parsed[0], encode(op, args, message))
            self._count_out(ok)
            return ok
        data = encode(op, args, message)  # (before the local part: an error raises first)
        if here:
            local.execute(Frame(op, args, message))
        return self._count_out(self._fan_out(data, op, args) >= 0)

    def _count_out(self, ok: bool) -> bool:
        if ok:
            self.stats["relayed_out"] += 1
        else:
            self.stats["send_failures"] += 1
        return ok

    def receive(self, frame: Frame) -> None:
        """Carry out a frame another process sent (never raises)."""
        self.stats["relayed_in"] += 1
        try:
            local.execute(frame)
        except Exception:
            self.log.exception("geworker: messaging %s from another process failed",
                               frame.op.name)

    # -- queries -------------------------------------------------------------

    def query(self, name: str, params: tuple[Any, ...], timeout: float | None = None) -> Any:
        """The answer to query ``name`` (see :data:`geworker.messaging.local.QUERIES`)."""
        checked = local.check_params(name, params)
        empty = local.QUERIES[name][3]
        if checked is None:
            return empty
        node = None
        if local.QUERIES[name][0][:1] == ("client_id",):
            node = checked[0][:NODE_LENGTH]
            if node == membership.node:
                return local.merge(name, [local.answer(name, checked)])
        request = next(self._requests)
        gather = self._gathers[request] = Gather()
        wait = self.timeout if timeout is None else timeout
        try:
            gather.expect(self._ask(encode(Op.QUERY, [request, name, checked]), node))
            answers = [] if node is not None else [local.answer(name, checked)]
            gather.done.wait(wait)
            if gather.missing:
                self.stats["query_timeouts"] += 1
                self.warn("query", "geworker: messaging query %s: %d process(es) did not "
                          "answer within %ss; the answer leaves them out", name,
                          len(gather.missing), wait)
            answers += gather.answers()
            return local.merge(name, answers) if answers else empty
        finally:
            self._gathers.pop(request, None)

    def replied(self, node: str, request: Any, answer: Any) -> None:
        """Record the share of ``node`` in the answer to ``request``."""
        gather = self._gathers.get(request) if isinstance(request, int) else None
        if gather is not None:
            gather.add(node, answer)

    def node_gone(self, node: str) -> None:
        """``node`` went away: stop waiting for its answers."""
        for gather in list(self._gathers.values()):
            gather.add(node, None)

    def answer(self, frame: Frame) -> bytes | None:
        """The reply frame to a query frame from another process."""
        try:
            request, name, params = frame.args
            result = local.answer(name, params)
        except Exception as exc:
            self.log.warning("geworker: a messaging query could not be answered: %r", exc)
            return None
        return encode(Op.REPLY, [request, result])

    # -- the rest --------------------------------------------------------------

    def warn(self, kind: str, message: str, *args: Any) -> None:
        """Log ``message`` unless one of the same ``kind`` was logged lately."""
        now = time.monotonic()
        if now - self._warned.get(kind, -WARN_EVERY) >= WARN_EVERY:
            self._warned[kind] = now
            self.log.warning(message, *args)

    def describe(self) -> dict[str, Any]:
        """The backend's state for ``status`` and the metrics."""
        return {"kind": self.kind, "connected": self.connected,
                "uids": len(membership.uids), "groups": len(membership.groups),
                "dropped": counters.errors.get("messages_dropped", 0) + self.stats["dropped"],
                **{k: v for k, v in self.stats.items() if k != "dropped"}}
