"""Outbound stream connections: what ``geworker.connect("text://host:port")`` returns.

A :class:`ClientConnection` is a :class:`~geworker.transport.connection.Connection`
that geworker opened instead of accepting it: the same ``send``,
``send_raw``, ``close``, ``pause_recv``/``resume_recv``, send queue
(``max_send_buffer_size``, ``on_buffer_full``/``on_buffer_drain``), read
loop, protocols and callbacks, so code written for a served connection works
on one it opened. What it adds:

* **connecting**, in its own greenlet (state ``CONNECTING``): DNS, TCP or
  unix connect, a proxy's tunnel and TLS (:mod:`~geworker.transport.outbound`),
  then the protocol's own handshake if it has one (WebSocket), all within
  ``connect_timeout``; then ``on_connect`` and the read loop;
* **reconnecting**: the object stays the same from one connection to the
  next (its ``id``, ``context`` and callbacks too). With a
  :class:`~geworker.transport.backoff.Backoff` it reconnects by itself;
  ``reconnect(delay)`` and ``cancel_reconnect()`` do it by hand;
* **the blocking style**: without an ``on_message`` callback, messages wait
  in an :class:`~geworker.transport.blocking.Inbox` for ``receive()``, ``for
  message in conn`` or a ``with`` block.

The rules, exactly:

* ``on_connect`` runs once for each connection that opened; ``on_close``
  once for each connection that opened, whoever closed it. An attempt that
  fails runs neither: ``on_error(conn, exc)`` gets a typed
  :class:`~geworker.errors.ConnectError` instead.
* ``conn.connects`` counts the connections that opened: 1 in the first
  ``on_connect``, 2 or more after a reconnect (``conn.is_reconnect``).
* While it is not open (connecting, closing, closed, waiting to reconnect)
  ``send`` refuses: it returns False and counts ``sends_refused``. Nothing is
  kept for a later connection.
* ``close()`` ends it for good: no automatic reconnect follows, a scheduled
  one is cancelled, an attempt under way is abandoned. ``reconnect()``
  starts it again.
* With automatic reconnects, every other close (the peer closed, the network
  failed, ``idle_timeout``, a protocol error, a callback that raised) and
  every failed attempt schedules the next attempt: the n-th retry in a row
  waits ``backoff.delay(n)``; a connection that opens resets n. A worker
  that drains (stop, reload) closes its client connections for good.
* ``reconnect(delay)`` and ``cancel_reconnect()`` called from ``on_close``,
  or from the ``on_error`` of a failed attempt, decide for that disconnect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event

from ..errors import (
    ConfigurationError,
    ConnectError,
    ConnectionClosed,
    ConnectTimeout,
    LocalProtocolError,
)
from ..stats import counters
from . import heartbeat, parking
from .blocking import BlockingStyle, Inbox
from .connection import Connection
from .outbound import Endpoint, Steps, open_stream
from .runtime import runtime_of
from .state import CLIENT_TRANSITIONS, ConnectionState

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..errors import RemoteProtocolError
    from ..listener import Listener
    from ..protocols.base import Protocol
    from .backoff import Backoff

__all__ = ["CLIENTS", "CLIENT_CALLBACKS", "ClientCallback", "ClientConnection", "drain_clients",
           "open_clients"]

_CONNECTING = ConnectionState.CONNECTING
_OPEN = ConnectionState.OPEN
_PARKED = ConnectionState.PARKED
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED

#: The callbacks a client connection (or a UDP client) may have.
CLIENT_CALLBACKS = ("on_connect", "on_message", "on_close", "on_error", "on_buffer_full",
                    "on_buffer_drain")


class _Clients:
    """Where a :class:`~geworker.Server` stands for the connections it accepts.

    Its run-time state (``runtime_of(CLIENTS)``) lists the open client
    connections of this process; it is never draining, has no callbacks of
    its own, and messaging skips its connections. It drains when the worker
    stops (:func:`drain_clients`).
    """

    __slots__ = ("__weakref__", "callbacks", "name")

    def __init__(self) -> None:
        self.name = "clients"
        self.callbacks: dict[str, Any] = {}


#: Stands as the ``server`` of every client connection.
CLIENTS = _Clients()


def open_clients() -> list[ClientConnection]:
    """The client connections of this process that are open now."""
    return list(runtime_of(CLIENTS).connections.values())  # type: ignore[arg-type]


def drain_clients() -> int:
    """Close every client connection of this process for good (the worker stops).

    Open ones drain like served connections (a WebSocket says 1001); no
    attempt starts from now on, scheduled or automatic. Returns how many
    were open.
    """
    runtime = runtime_of(CLIENTS)  # type: ignore[arg-type]
    runtime.draining = True
    conns = open_clients()
    for conn in conns:
        conn.drain()
    return len(conns)


class ClientCallback:
    """A callback slot of a client: ``conn.on_message = f`` sets it, ``@conn.on_message`` too."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.__doc__ = f"The ``{name}`` callback of this client (set it, or decorate with it)."

    def __get__(self, conn: Any, owner: type) -> Any:
        if conn is None:
            return self

        def register(func: Callable[..., Any]) -> Callable[..., Any]:
            self.__set__(conn, func)
            return func

        return register

    def __set__(self, conn: Any, func: Callable[..., Any] | None) -> None:
        if func is None:
            conn._callbacks.pop(self.name, None)
        elif not callable(func):
            raise ConfigurationError(f"{self.name} must be a function, not {func!r}")
        else:
            conn._callbacks[self.name] = func


class ClientConnection(Connection, BlockingStyle):
    """A connection geworker opened: see the module documentation for its rules.

    Made by :func:`geworker.connect`. Besides the
    :class:`~geworker.transport.connection.Connection` API:

    Attributes:
        endpoint: where it connects (:class:`~geworker.transport.outbound.Endpoint`).
        backoff: the automatic reconnect policy (None: no automatic reconnect).
        connects: how many times it opened (0 until the first ``on_connect``).
        failures: attempts in a row that failed (reset when one opens).
        sends_refused: messages refused because it was not open.
        last_error: the :class:`~geworker.errors.ConnectError` of the last
            failed attempt (None once an attempt opens).
    """

    read_backpressure = False  # (see Connection.read_backpressure)

    # No __slots__: a __dict__ lets WebSocketClientConnection derive from
    # this class and from WebSocketConnection (whose slots would clash).

    on_connect = ClientCallback()
    on_message = ClientCallback()
    on_close = ClientCallback()
    on_error = ClientCallback()
    on_buffer_full = ClientCallback()
    on_buffer_drain = ClientCallback()

    #: Messaging (uids, groups, broadcasts) reaches accepted connections only.
    accepts_messages = False

    def __init__(self, listener: Listener, endpoint: Endpoint, backoff: Backoff | None = None,
                 log: Any = None) -> None:
        super().__init__(None, endpoint.address, listener, CLIENTS, log)  # type: ignore[arg-type]
        self._state = _CONNECTING  # (a connection's first state, set as Connection sets OPEN)
        self._callbacks = {}
        self.endpoint = endpoint
        self.backoff = backoff
        self.connects = 0
        self.failures = 0
        self.sends_refused = 0
        self.last_error: ConnectError | None = None
        self._retries = 0  # retries scheduled since the last open
        self._greenlet: Any = None  # the attempt under way or scheduled (then it serves)
        self._for_good = False  # close() was called
        self._asked: float | None = None  # reconnect(delay) for the disconnect being handled
        self._cancelled = False  # cancel_reconnect() for the disconnect being handled
        self._deciding = False  # on_close / on_error of a disconnect is running
        self._itself = False  # the connection closes itself (not the app's close())
        self._app_paused = False
        self._waiters = 0  # greenlets in wait_connected()
        self._ended = Event()  # closed with nothing scheduled: the end
        self._opened = Event()  # set while open
        self._inbox = Inbox(self._inbox_pause, self._inbox_resume)

    # -- public API -------------------------------------------------------

    @property
    def is_reconnect(self) -> bool:
        """True from the second connection on (in ``on_connect``: this is a reconnect)."""
        return self.connects > 1

    @property
    def reconnect_pending(self) -> bool:
        """True while an attempt is scheduled or under way after a disconnect."""
        return not self._ended.is_set() and not self._state.is_open

    @property
    def local_address(self) -> Any:
        """The local socket address (None before the first connection)."""
        if self.socket is None:
            return None
        return Connection.local_address.fget(self)  # type: ignore[attr-defined]

    def start(self) -> ClientConnection:
        """Begin the first attempt, in a new greenlet (``geworker.connect`` calls it)."""
        if self._greenlet is None and self._state is _CONNECTING:
            self._greenlet = gevent.spawn(self._attempt)
        return self

    def send(self, message: Any) -> bool:
        """Encode and send ``message`` (see ``Connection.send``); False unless open.

        A refused message is counted in ``sends_refused``: nothing is queued
        for a later connection.
        """
        state = self._state
        if state is not _OPEN and state is not _PARKED:
            self._refused()
            return False
        return super().send(message)

    def send_raw(self, data: bytes) -> bool:
        """Send bytes as they are (see ``Connection.send_raw``); False unless connected."""
        state = self._state
        if state is _CONNECTING or state is _CLOSED:
            self._refused()
            return False
        return super().send_raw(data)

    def close(self, message: Any = None) -> None:
        """Send ``message`` (if given), flush, close, and connect no more.

        Cancels a scheduled reconnect and abandons an attempt under way;
        ``reconnect()`` starts again.
        """
        if not self._itself and self._stop():
            return
        super().close(message)

    def reconnect(self, delay: float = 0.0) -> None:
        """Connect again ``delay`` seconds from now (Workerman's ``reconnect``).

        Open: closes this connection first (``on_close`` runs), then
        connects. Closed (in ``on_close`` too): schedules the attempt.
        Connecting already: does nothing.
        """
        if delay < 0:
            raise ValueError("reconnect delay must not be negative")
        self._for_good = False
        self._cancelled = False
        state = self._state
        if state is _CONNECTING:
            return
        if self._deciding or state is not _CLOSED:
            self._asked = delay
            if state.is_open:
                self._itself = True
                try:
                    super().close()  # (the protocol's own close: a WebSocket sends 1000)
                finally:
                    self._itself = False
            return
        self._unschedule()
        self._schedule(delay)

    def cancel_reconnect(self) -> None:
        """Connect no more for now: cancel the attempt scheduled or under way.

        From ``on_close`` (or a failed attempt's ``on_error``): no attempt
        follows this disconnect. Automatic reconnects stay on for later
        disconnects (``close()`` stops them for good).
        """
        self._asked = None
        if self._deciding:
            self._cancelled = True
        elif self._state is _CLOSED:
            self._unschedule()
            self._ended.set()
        elif self._state is _CONNECTING:
            self._abandon()

    def pause_recv(self) -> None:
        """Stop reading from the peer until :meth:`resume_recv` (kept across a reconnect)."""
        self._app_paused = True
        super().pause_recv()

    def resume_recv(self) -> None:
        """Read from the peer again after :meth:`pause_recv`."""
        self._app_paused = False
        super().resume_recv()

    # -- one attempt --------------------------------------------------------

    def _attempt(self) -> None:
        """Connect (within ``connect_timeout``), then serve; or report the failure."""
        if self._runtime.draining:  # the worker stops: no new connection
            if self._state is _CONNECTING:
                self._transition(_CLOSED)
            self._greenlet = None
            self._ended.set()
            return
        if self._state is _CLOSED and not self._transition(_CONNECTING):
            return
        endpoint = self.endpoint
        steps = Steps()
        sock = None
        timeout = gevent.Timeout(endpoint.connect_timeout)
        timeout.start()
        try:
            sock, peer = open_stream(endpoint, steps)
            protocol = self._client_handshake(sock, steps)
        except gevent.Timeout as exc:
            if exc is not timeout:
                raise
            error: ConnectError = ConnectTimeout(
                endpoint.url, f"not connected within {endpoint.connect_timeout}s "
                f"(timed out {steps.now})")
        except ConnectError as exc:
            error = exc
        except Exception as exc:
            self.log.exception("geworker: connecting to %s failed (%s)", endpoint.url, steps.now)
            error = ConnectError(endpoint.url, f"{steps.now} failed: {exc!r}")
        except BaseException:  # killed: close() or cancel_reconnect() abandoned it
            if sock is not None:
                sock.close()
            raise
        else:
            if self._state is _CONNECTING:
                self._open(sock, peer, protocol)
                self._run(self._serve)
            else:  # abandoned meanwhile
                sock.close()
            return
        finally:
            timeout.close()
        if sock is not None:
            sock.close()
        self._failed(error)

    def _client_handshake(self, sock: Any, steps: Steps) -> Protocol | None:
        """After the stream is open, before ``on_connect``: a protocol's own handshake.

        Returns the protocol instance to use (None: a new one from the
        listener). Raises :class:`~geworker.errors.ConnectError` to fail the attempt.
        """
        return None

    def _open(self, sock: Any, peer: Any, protocol: Protocol | None) -> None:
        """The attempt succeeded: start a connection on ``sock`` with fresh state."""
        keep = (self.id, self.context, self._callbacks, self._resume)
        # Every per-connection field starts afresh, exactly as for an accepted
        # connection, whatever fields the connection classes hold.
        super().__init__(sock, peer, self.listener, CLIENTS, self.log)  # type: ignore[arg-type]
        self.id, self.context, self._callbacks, self._resume = keep
        self._state = _CONNECTING  # (__init__ set OPEN; the move is made here)
        if protocol is not None:
            self.protocol = protocol
        self._transition(_OPEN)

    def _failed(self, error: ConnectError) -> None:
        """An attempt failed: ``CLOSED`` without ``on_close``, ``on_error``, then maybe retry."""
        if self._state is not _CONNECTING:
            return  # abandoned meanwhile
        self.failures += 1
        self.last_error = error
        counters.errors[f"connect_{error.kind}"] += 1
        self._transition(_CLOSED)
        self._deciding = True
        try:
            self._report_error(error)
        finally:
            self._deciding = False
        self._decide(opened=False)

    # -- disconnects and the next attempt -------------------------------------

    def _decide(self, opened: bool) -> None:
        """After a close (``opened``) or a failed attempt: schedule the next attempt, or end."""
        delay = self._next_delay(opened)
        url = self.listener.url
        if delay is None:
            self._greenlet = None
            self._ended.set()
            if (not opened and self.last_error is not None and not self._waiters
                    and "on_error" not in self._callbacks):
                self.log.warning("geworker: %s", self.last_error)  # (else nobody would know)
            return
        if opened:
            self.log.info("geworker: connection to %s closed; reconnecting in %.2fs", url, delay)
        else:
            self.log.info("geworker: %s; retrying in %.2fs", self.last_error, delay)
        self._schedule(delay)

    def _next_delay(self, opened: bool) -> float | None:
        asked, self._asked = self._asked, None
        cancelled, self._cancelled = self._cancelled, False
        if self._for_good:
            return None
        if asked is not None:
            return asked
        policy = self.backoff
        if cancelled or policy is None or self._draining or self._runtime.draining:
            return None
        if policy.give_up_after is not None and self.failures >= policy.give_up_after:
            self.log.warning("geworker: %s: giving up after %d failed attempts in a row",
                             self.listener.url, self.failures)
            return None
        delay = policy.delay(self._retries)
        self._retries += 1
        return delay

    def _schedule(self, delay: float) -> None:
        self._ended.clear()
        self._greenlet = gevent.spawn_later(delay, self._attempt)

    def _unschedule(self) -> None:
        """Cancel a scheduled attempt that has not started."""
        greenlet, self._greenlet = self._greenlet, None
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=False)

    def _abandon(self) -> None:
        """Give up the attempt under way: ``CLOSED`` at once; its greenlet closes its socket."""
        greenlet, self._greenlet = self._greenlet, None
        self._transition(_CLOSED)
        self._ended.set()
        if greenlet is not None and greenlet is not gevent.getcurrent():
            greenlet.kill(block=False)

    def _stop(self) -> bool:
        """``close()``: no more attempts. True when there is no connection left to close."""
        self._for_good = True
        self._asked = None
        state = self._state
        if state is _CONNECTING:
            self._abandon()
            return True
        if state is _CLOSED:
            if not self._deciding:  # (else the disconnect being handled sees _for_good)
                self._unschedule()
                self._ended.set()
            return True
        return False

    # -- the lifecycle ----------------------------------------------------

    def _transition(self, new: ConnectionState) -> bool:
        """Moves of :data:`~geworker.transport.state.CLIENT_TRANSITIONS`.

        Into and out of ``CONNECTING`` here; the rest as for any connection
        (``Connection._transition``: ``on_close`` on ``CLOSING`` -> ``CLOSED``),
        after which the next attempt is decided.
        """
        old = self._state
        if new not in CLIENT_TRANSITIONS[old]:
            return False
        if old is _CONNECTING or new is _CONNECTING:
            self._state = new
            if new is _OPEN:
                self.connects += 1
                self.failures = self._retries = 0
                self.last_error = None
                self._runtime.connections[self.id] = self
                parking.register(self)
                if self.listener.options.heartbeat_interval is not None:
                    heartbeat.watch(self)  # (client connections get heartbeats too)
                self._opened.set()
            elif new is _CONNECTING:
                self._ended.clear()
            return True
        if new is _CLOSING:
            self._opened.clear()
        if new is not _CLOSED:
            return super()._transition(new)
        self._deciding = True
        try:
            super()._transition(new)  # on_close
        finally:
            self._deciding = False
        counters.connections_closed -= 1  # (the worker's counters are of accepted connections)
        self._decide(opened=True)
        return True

    # -- closes it makes itself (they do not stop reconnects) -------------

    def _batch_done(self) -> None:
        if self.protocol.closed or self._draining:  # (only then does it close)
            self._itself = True
            try:
                super()._batch_done()
            finally:
                self._itself = False

    def _reject(self, exc: RemoteProtocolError) -> None:
        self._itself = True
        try:
            super()._reject(exc)
        finally:
            self._itself = False

    def _end_after_failure(self) -> None:
        self._itself = True
        try:
            super()._end_after_failure()
        finally:
            self._itself = False

    def _idle_timed_out(self) -> bool:
        self._itself = True
        try:
            return super()._idle_timed_out()
        finally:
            self._itself = False

    # -- messages ---------------------------------------------------------

    def _dispatch(self, messages: list[Any]) -> bool:
        if "on_message" not in self._callbacks:
            counters.messages_in += len(messages)
            self._inbox.put(messages)
            return True
        return super()._dispatch(messages)

    def _inbox_pause(self) -> None:
        Connection.pause_recv(self)

    def _inbox_resume(self) -> None:
        if not self._app_paused:
            Connection.resume_recv(self)

    def _refused(self) -> None:
        self.sends_refused += 1
        counters.errors["send_refused"] += 1

    def _closed_error(self) -> ConnectionClosed:
        code = getattr(self.protocol, "close_code", None)
        reason = getattr(self.protocol, "close_reason", "")
        detail = f" (close code {code}{': ' + reason if reason else ''})" if code else ""
        return ConnectionClosed(f"{self.listener.url}: the connection is closed{detail}",
                                code, reason)

    def _check_messaging(self) -> None:
        raise LocalProtocolError("a client connection cannot bind a uid or join a group: "
                                 "messaging reaches the connections a server accepted")

    def __repr__(self) -> str:
        return (f"<geworker.ClientConnection #{self.id} {self.listener.url} "
                f"{self._state.value} connects={self.connects}>")
