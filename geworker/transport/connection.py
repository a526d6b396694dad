"""Stream connections: the public ``Connection`` API, its lifecycle, and the read loop.

One greenlet per connection runs :meth:`Connection.serve`: read bytes, feed
the listener's sans-IO protocol, call ``on_message`` for each complete
message (in order), write what the protocol produced. User callbacks run in
that greenlet, so they may block without stalling other connections.

The lifecycle is a state machine (:mod:`~geworker.transport.state`): every
change of ``state`` goes through :meth:`Connection._transition`, and entering
``CLOSED`` is the one place that runs ``on_close``, so it runs exactly once.
Writing is the :class:`~geworker.transport.writer.Writer` mixin (never
blocks, keeps order); a silent connection parks without a greenlet
(:mod:`~geworker.transport.parking`).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event

from ..errors import LocalProtocolError, RemoteProtocolError
from ..protocols.base import Protocol
from ..stats import counters
from . import _gevent, heartbeat, parking, stalls
from .membership import Session, check_name, membership
from .runtime import runtime_of
from .state import TRANSITIONS, ConnectionState
from .writer import Writer

if TYPE_CHECKING:
    from ..listener import Listener
    from ..server import Server

__all__ = ["RECV_SIZE", "Connection", "ConnectionState", "report_callback_failure"]

#: Bytes asked of the kernel per ``recv``, by every stream connection.
RECV_SIZE = 65536
#: A connection whose reads keep finding data (so it never waits) yields to the
#: others once the hub has not polled for FAIR_SLICE seconds; checked every
#: FAIR_BATCHES batches. A yield costs a loop iteration and epoll updates, so
#: a busy but fair server (many connections, each a little behind) must not pay it.
FAIR_SLICE = 0.002
FAIR_BATCHES = 8
#: The yield: a timer this short fires right after the hub's next poll.
FAIR_YIELD = 1e-6
#: Seconds a draining worker waits for the first message of a brand-new connection.
FIRST_MESSAGE_GRACE = 1.0
_ids = itertools.count(1)

# Module globals: a global is faster to read than ``ConnectionState.OPEN`` on the hot path.
_OPEN = ConnectionState.OPEN
_PARKED = ConnectionState.PARKED
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED
_HANDED_OFF = ConnectionState.HANDED_OFF


class Connection(Writer):
    """One accepted stream connection (TCP or unix socket).

    Attributes:
        id: unique within this worker process.
        listener: the :class:`~geworker.listener.Listener` that accepted it.
        server: the :class:`~geworker.Server` it belongs to.
        protocol: the sans-IO protocol instance framing its messages.
        remote_address: the peer's address (``(host, port)``, or ``""`` on unix sockets).
        context: a dict for the application's per-connection data.
        bytes_read / bytes_written: byte counts on the wire.
        created: ``time.time()`` when it was accepted.
    """

    # Besides ``_state`` (the lifecycle) and the writer's slots, flags that are
    # not lifecycle states: they change on every message, or say what is
    # asked of the connection rather than where it is.
    #   _in_recv   the serving greenlet waits in the read loop's recv (or its wait)
    #   _busy      on_message runs for it
    #   _draining  close once idle (the worker stops or reloads)
    #   _resume    an Event while reading is paused (pause_recv)
    #   _reader    the greenlet serving it (None while parked, or between greenlets)
    __slots__ = (
        "__weakref__",
        "_backpressured",
        "_busy",
        "_callbacks",
        "_close_timer",
        "_closed_address",
        "_draining",
        "_groups",
        "_hb_mark",
        "_hb_missed",
        "_idle_mark",
        "_idle_since",
        "_in_recv",
        "_park_timer",
        "_partial_since",
        "_reader",
        "_resume",
        "_runtime",
        "_session",
        "_state",
        "_uid",
        "bytes_read",
        "context",
        "created",
        "id",
        "listener",
        "log",
        "protocol",
        "remote_address",
        "server",
        "socket",
    )

    def __init__(
        self,
        sock: socket.socket,
        remote_address: Any,
        listener: Listener,
        server: Server,
        log: Any = None,
    ) -> None:
        self.id = next(_ids)
        self.socket = sock
        self.listener = listener
        self.server = server
        self._runtime = runtime_of(server)
        self._closed_address: Any = None
        self.protocol = listener.protocol.for_listener(listener.options)
        self.remote_address = remote_address
        self.context: dict[str, Any] = {}
        self.bytes_read = 0
        self.created = time.time()
        self._state = _OPEN
        self.log = log or logging.getLogger("geworker")
        self._init_writer(sock)
        self._resume: Event | None = None
        self._busy = False
        self._draining = False
        self._close_timer: Any = None
        self._in_recv = False
        self._reader: Any = None
        self._park_timer: Any = None
        self._idle_mark = -1  # bytes_read when a sweep first saw it waiting
        self._idle_since = 0.0
        self._callbacks = server.callbacks
        self._uid: str | None = None
        self._groups: set[str] | None = None
        self._session: Session | None = None
        self._hb_mark = 0
        self._backpressured = False  # reading paused once for a full send queue (logged)
        self._partial_since = 0.0  # when the message being received began (0: none)
        self._hb_missed = -1  # -1: no heartbeat watches it

    #: Whether reading pauses while its own send queue is full (see _wait_for_drain).
    #: Client connections keep reading: two geworker peers that both paused would
    #: wait for each other forever; their apps pace them (pipe, pause_recv).
    read_backpressure = True

    #: Whether messaging reaches it (``send_to_uid``, groups, broadcasts):
    #: True for every message protocol, False for plain HTTP connections.
    accepts_messages = True

    # -- public API -----------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the connection is in its life (read-only; see :class:`ConnectionState`).

        ``state.is_open`` is True while it can send, parked or not.
        """
        return self._state

    @property
    def local_address(self) -> Any:
        """The local socket address (still known in ``on_close``)."""
        try:
            return self.socket.getsockname()
        except OSError:
            return self._closed_address

    def send(self, message: Any) -> bool:
        """Encode ``message`` with the listener's protocol and send it.

        Safe from any greenlet; never blocks. Returns True when the data was
        written or queued, False when the connection is closing or closed,
        or the send queue is full (the message is then dropped and
        ``on_error`` gets a :class:`~geworker.errors.SendBufferFull`).

        Raises:
            LocalProtocolError: when the protocol cannot encode ``message``.
        """
        state = self._state
        if state is not _OPEN and state is not _PARKED:  # (not .is_open: one test when OPEN)
            return False
        return self.send_raw(self.protocol.encode(message))

    def close(self, message: Any = None) -> None:
        """Send ``message`` (if given), flush what is queued, then close.

        Receiving stops at once. Queued data gets ``close_timeout`` seconds
        to reach the peer. ``on_close`` runs in the connection's greenlet.
        """
        if self._state is _PARKED:
            parking.wake(self)  # a greenlet to see the socket shut and finish
        if self._state is not _OPEN:
            return
        if message is not None:
            self.send(message)
        self._uncork()
        self._transition(_CLOSING)
        if self._flusher is None:
            self._shutdown()
        else:
            timer = self._close_timer = gevent.get_hub().loop.timer(
                self.listener.options.close_timeout)
            timer.start(self._shutdown)

    # -- messaging (see geworker.messaging) ------------------------------

    @property
    def client_id(self) -> str:
        """This connection's id for messaging: unique across workers, reloads and machines.

        Any worker (and :class:`geworker.Messenger` outside them) can reach it
        with ``messaging.send_to_client(client_id, message)``; ``id`` stays the
        cheap integer that is unique within this worker.
        """
        return membership.client_id(self)

    @property
    def uid(self) -> str | None:
        """The uid bound with :meth:`bind_uid`, or None."""
        return self._uid

    @property
    def groups(self) -> frozenset[str]:
        """The groups it joined with :meth:`join`."""
        return frozenset(self._groups or ())

    @property
    def session(self) -> Session:
        """The app's data about this client (a dict of JSON values), readable from any worker.

        GatewayWorker's ``$_SESSION``: queries such as ``group_members`` return
        it. Set keys (``conn.session["name"] = "ann"``) or assign a whole dict;
        both are checked (JSON only, at most 64 KiB).
        """
        session = self._session
        if session is None:
            session = self._session = Session()
            session.owner = self
        return session

    @session.setter
    def session(self, data: Any) -> None:
        if type(data) is not Session or data.owner not in (None, self):
            data = Session(data)  # (a session another connection owns is copied)
        data.owner = self
        self._session = data
        if membership.observer is not None:
            membership.observer(self)

    def bind_uid(self, uid: str) -> None:
        """Bind this connection to the application's user id ``uid``.

        One uid may have many connections (a phone and a laptop); a
        connection has one uid at a time (binding again replaces it). The
        binding ends when the connection closes.

        Raises:
            LocalProtocolError: for a uid that is not a str of 1 to 256
                characters, or on a plain HTTP connection.
        """
        self._check_messaging()
        membership.bind_uid(self, check_name("uid", uid))

    def unbind_uid(self) -> None:
        """Forget the uid bound to this connection (if any)."""
        membership.unbind_uid(self)

    def join(self, group: str) -> None:
        """Join ``group`` (a room, a topic); left automatically when the connection closes.

        Raises:
            LocalProtocolError: for a name that is not a str of 1 to 256
                characters, past 256 groups per connection, or on a plain HTTP
                connection.
        """
        self._check_messaging()
        membership.join(self, check_name("group", group))

    def leave(self, group: str) -> None:
        """Leave ``group`` (nothing happens if it is not in it)."""
        membership.leave(self, group)

    def _check_messaging(self) -> None:
        if not self.accepts_messages:
            raise LocalProtocolError(
                "a plain HTTP connection cannot bind a uid or join a group: messaging "
                "reaches WebSocket and message-protocol connections")

    def pause_recv(self) -> None:
        """Stop reading from the peer until :meth:`resume_recv` (flow control)."""
        if self._resume is None:
            self._resume = Event()

    def resume_recv(self) -> None:
        """Read from the peer again after :meth:`pause_recv`."""
        resume, self._resume = self._resume, None
        if resume is not None:
            resume.set()

    @property
    def max_send_buffer_size(self) -> int:
        """Bytes the send queue may hold (the listener's ``max_send_buffer_size``)."""
        return self.listener.options.max_send_buffer_size

    def pipe(self, dest: Any) -> None:
        """Forward every message of this connection to ``dest``, with flow control.

        Workerman's ``pipe``: this connection stops reading while ``dest``'s
        send queue is full and resumes when it drains; when either side
        closes, the other is closed after its queue is flushed. Two pipes
        make a proxy: ``conn.pipe(upstream); upstream.pipe(conn)``. See
        :func:`geworker.transport.pipe.pipe`.
        """
        from .pipe import pipe  # (most connections never pipe)

        pipe(self, dest)

    def _use_callbacks(self, callbacks: dict[str, Any]) -> None:
        """Give this connection callbacks of its own instead of its server's (a pipe)."""
        self._callbacks = callbacks

    @property
    def is_recv_paused(self) -> bool:
        """True between :meth:`pause_recv` and :meth:`resume_recv`."""
        return self._resume is not None

    @property
    def is_busy(self) -> bool:
        """True while ``on_message`` runs for this connection."""
        return self._busy

    @property
    def is_parked(self) -> bool:
        """True while it waits for input without a greenlet (see ``park_after``)."""
        return self._state is _PARKED

    def drain(self) -> None:
        """Close once idle: now if no message is in progress, else after it.

        The worker calls this when it stops or reloads; the protocol's
        :meth:`~geworker.protocols.Protocol.going_away` bytes are sent first.
        """
        self._draining = True
        if self._busy or self.protocol.has_partial_message:
            return  # the serve loop closes after the current message
        age = time.time() - self.created
        if age < FIRST_MESSAGE_GRACE:
            # Accepted just before the worker began to stop: the peer's first
            # message is likely on its way. Answer it (the serve loop closes
            # right after) instead of turning away a connection it just opened.
            gevent.spawn_later(FIRST_MESSAGE_GRACE - age, self._go_away)
        else:
            self._go_away()

    def hand_off(self) -> None:
        """Give the socket to another :class:`Connection` (a protocol upgrade).

        This object's serve loop then ends without closing the socket or
        running ``on_close``: the new connection owns both, and is the one
        listed in ``server.connections``.
        """
        self._transition(_HANDED_OFF)

    # -- the lifecycle ----------------------------------------------------

    def _transition(self, new: ConnectionState) -> bool:
        """Move to ``new`` if :data:`~geworker.transport.state.TRANSITIONS` allows it.

        The one place ``_state`` changes. Leaving ``PARKED`` stops the read
        watcher; entering ``CLOSED`` closes the socket and runs ``on_close``
        (only ``CLOSING`` leads there, so that happens once); entering
        ``HANDED_OFF`` unlists the connection without either. Returns False,
        changing nothing, for a move the table does not allow.
        """
        old = self._state
        if new not in TRANSITIONS[old]:
            return False
        self._state = new
        if old is _PARKED:
            parking.unwatch(self)
        if new is _CLOSED:
            self._runtime.connections.pop(self.id, None)
            if self._uid is not None or self._groups:
                membership.forget(self)
            if self._hb_missed >= 0:
                heartbeat.forget(self)
            if membership.observer is not None and self.accepts_messages:
                membership.observer(self)
            parking.forget(self)
            counters.connections_closed += 1
            on_close = self._callbacks.get("on_close")
            if on_close is not None:
                with contextlib.suppress(OSError):  # for local_address in on_close
                    self._closed_address = self.socket.getsockname()
            with contextlib.suppress(OSError):
                self.socket.close()
            if on_close is not None:
                self._call(on_close, self)
        elif new is _HANDED_OFF:
            self._runtime.connections.pop(self.id, None)
            if self._uid is not None or self._groups:
                membership.forget(self)
            if self._hb_missed >= 0:
                heartbeat.forget(self)
            if membership.observer is not None and self.accepts_messages:
                membership.observer(self)
            parking.forget(self)
            counters.connections_accepted -= 1
        return True

    def serve(self) -> None:
        """Run the connection until it closes or parks; ``on_close`` runs exactly once."""
        self._runtime.connections[self.id] = self
        if membership.observer is not None and self.accepts_messages:
            membership.observer(self)
        parking.register(self)
        counters.connections_accepted += 1
        if self.listener.options.heartbeat_interval is not None and self.accepts_messages:
            heartbeat.watch(self)
        self._run(self._serve)

    def abort(self) -> None:
        """End a parked connection now (its socket closes, ``on_close`` runs here).

        The worker calls this for what is left when ``graceful_timeout`` ends;
        connections with a greenlet end when it is killed.
        """
        if self._state is _PARKED:
            self._finish()

    def _run(self, part: Any) -> None:
        """Run ``part`` of the connection's life in this greenlet; unless it parks, finish."""
        self._reader = gevent.getcurrent()
        parked = False
        try:
            part()
        except parking.Parked:
            parked = True
        finally:
            self._reader = None
            if not parked:
                self._finish()
        if parked:
            if self._transition(_PARKED):
                parking.watch(self)
            else:
                self._finish()

    def _finish(self) -> None:
        """Flush what is queued, close the socket, run ``on_close`` (through ``CLOSED``)."""
        state = self._state
        if state is _CLOSED or state is _HANDED_OFF:
            return
        self._uncork()
        self._cork = None
        if state is not _CLOSING:
            self._transition(_CLOSING)
        flusher = self._flusher
        if flusher is not None:
            flusher.join(timeout=self.listener.options.close_timeout)
            flusher.kill(block=False)
        if self._close_timer is not None:
            self._close_timer.close()
        self._stop_full_timer()
        self._transition(_CLOSED)

    # -- the read loop ----------------------------------------------------

    def _serve(self) -> None:
        if self._start():
            if parking.nothing_to_read(self):
                # A new connection that has sent nothing yet parks at once: idle
                # clients then never hold a greenlet, not even for park_after.
                self._prepare_reading()  # (sets the idle_timeout the parked wait keeps)
                self._idle_since = time.monotonic()
                raise parking.Parked
            self._read_loop()

    def _start(self) -> bool:
        """Before the read loop: ``on_connect`` (subclasses add handshakes). False ends."""
        on_connect = self._callbacks.get("on_connect")
        if on_connect is not None and not self._call(on_connect, self):
            return False
        if self._runtime.draining:
            self.drain()
        return True

    def _read_loop(self) -> None:
        """Read, feed the protocol, dispatch the messages, until the socket closes."""
        protocol = self.protocol
        recv = self.socket.recv
        self._prepare_reading()
        loop = gevent.get_hub().loop
        iteration, batches = -1, 0
        # Hooks a class leaves as they are cost a call per read for nothing.
        before_recv = (self._before_recv
                       if type(self)._before_recv is not Connection._before_recv else None)
        data_to_send = (protocol.data_to_send
                        if type(protocol).data_to_send is not Protocol.data_to_send else None)
        # HTTP has its own head and body deadlines.
        stall_check = self.accepts_messages and self.listener.options.message_timeout is not None
        while True:
            if self._resume is not None:
                self._resume.wait()
            if self._buffer_full:
                self._wait_for_drain()
            self._in_recv = True
            try:
                if before_recv is not None and not before_recv():
                    return
                data = recv(RECV_SIZE)
            except TimeoutError:
                self._in_recv = False
                if self._idle_timed_out():
                    continue
                return
            except OSError:
                return
            self._in_recv = False
            if not data:
                return
            if self._state is not _OPEN:
                continue  # closing: discard input until the socket is shut
            size = len(data)
            self.bytes_read += size
            counters.bytes_in += size
            try:
                messages = protocol.receive_data(data)
            except RemoteProtocolError as exc:
                self._reject(exc)
                return
            if data_to_send is not None:
                out = data_to_send()
                if out:
                    self.send_raw(out)
            if messages and not self._handle(messages):
                return
            if stall_check and protocol.has_partial_message and (
                    messages or not self._partial_since):  # a message began in this batch
                if not self._partial_since:
                    stalls.watch(self)
                self._partial_since = time.monotonic()
            if loop.iteration == iteration:
                batches += 1
                if batches % FAIR_BATCHES == 0 and time.time() - loop.now() > FAIR_SLICE:
                    # (loop.now() is when the hub last polled.) A timer, not
                    # sleep(0): that resumes from the hub's callback queue, which
                    # runs up to 50 callbacks before it polls again, so the other
                    # connections' input would still wait.
                    gevent.sleep(FAIR_YIELD)
            else:
                iteration, batches = loop.iteration, 0
            self._batch_done()

    def _wait_for_drain(self) -> None:
        """Backpressure: read nothing more from a peer that does not read its answers.

        A client that floods requests and never reads would make every answer
        drop (its send queue is full) while the worker keeps reading and
        working for it. So reading pauses until the queue is written out;
        ``send_queue_timeout`` or a heartbeat still ends a peer that never
        reads again.
        """
        flusher = self._flusher
        if flusher is None or not self.read_backpressure:
            return
        if not self._backpressured:
            self._backpressured = True
            counters.errors["read_paused"] += 1
            self.log.info("geworker: connection #%s from %s on %s does not read its answers: "
                          "reading from it pauses until its send queue drains", self.id,
                          self.remote_address, self.listener.url)
        flusher.join()

    def _prepare_reading(self) -> None:
        """Before the first read (subclasses set up their own timeouts)."""
        self.socket.settimeout(self.listener.options.idle_timeout)

    def _before_recv(self) -> bool:
        """Before each read; False ends the loop. May wait (``_in_recv`` is set)."""
        return True

    def _handle(self, messages: list[Any]) -> bool:
        """Dispatch one received batch, its answers written in one piece; False ends."""
        if len(messages) > 1:
            self._cork = []
        handled = self._dispatch(messages)
        if self._cork is not None:
            self._uncork()
            self._cork = None
        return handled

    def _dispatch(self, messages: list[Any]) -> bool:
        """Call ``on_message`` for each message, in order; False stops the loop.

        Protocols with richer semantics (HTTP, WebSocket) subclass
        :class:`Connection` and override this (see ``Protocol.connection_class``).
        """
        counters.messages_in += len(messages)
        on_message = self._callbacks.get("on_message")
        if on_message is None:
            return True
        self._busy = True
        for message in messages:
            try:
                on_message(self, message)
            except Exception as exc:
                self._callback_failed("on_message", exc)
                return False
            if self._state is not _OPEN:
                break
        self._busy = False
        return True

    def _batch_done(self) -> None:
        """After each received chunk: close if the protocol is done, or drain."""
        if self.protocol.closed:
            self.close()
        elif self._draining and not self.protocol.has_partial_message:
            self._go_away()

    def _idle_timed_out(self) -> bool:
        """``idle_timeout`` passed with nothing received; True keeps reading."""
        self._log_close("closed after idle_timeout", "idle_timeout")
        return False

    def _idle_then_read(self) -> None:
        """Woken from parking by ``idle_timeout``: time out, or read on."""
        if self._idle_timed_out():
            self._read_loop()

    def _can_park(self) -> bool:
        """Only a plain wait for input parks: nothing in progress, queued or buffered."""
        sock = self.socket
        return (self._state is _OPEN and self._resume is None and self._flusher is None
                and not self._busy and not self._draining and self._reader is not None
                and _gevent.has_read_watcher(sock) and not self.protocol.has_partial_message
                and not (hasattr(sock, "pending") and sock.pending()))

    # -- closing ----------------------------------------------------------

    def _go_away(self) -> None:
        if self._state.is_open:
            bye = self.protocol.going_away()
            if bye:
                self.send_raw(bye)
            self.close()

    def _shutdown(self, *_: Any) -> None:
        """Shut the socket both ways: the reading greenlet wakes up with EOF."""
        if self._state is _PARKED:
            parking.wake(self)  # (gevent's shutdown cancels waits on the read watcher)
        self.resume_recv()  # a paused reader must wake up to see it
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    def _reject(self, exc: RemoteProtocolError) -> None:
        counters.errors[type(exc).__name__] += 1
        if exc.response:
            self.send_raw(exc.response)
        self.log.warning("geworker: closing connection #%s from %s on %s: %s",
                         self.id, self.remote_address, self.listener.url, exc.reason)
        self.close()

    # -- heartbeats and slow consumers ---------------------------------------

    def _heartbeat_ping(self) -> None:
        """A heartbeat tick found it alive: send ``heartbeat_data``, if any."""
        data = self.listener.options.heartbeat_data
        if data is not None:
            self.send(data)

    def _heartbeat_missed(self) -> None:
        """Nothing received for ``heartbeat_missed_limit`` ticks: the peer is gone."""
        options = self.listener.options
        self._log_close(f"closed: nothing received for {options.heartbeat_missed_limit} "
                        f"heartbeat(s) of {options.heartbeat_interval}s", "heartbeat")
        self._close_now("heartbeat")

    def _message_timed_out(self, seconds: float) -> None:
        """A message began ``seconds`` ago and is still incomplete."""
        self._log_close(f"closed: a message began {seconds:.0f}s ago and is still incomplete "
                        f"(message_timeout={self.listener.options.message_timeout}s)",
                        "message_timeout")
        self._close_now("message_timeout")

    def _slow_consumer(self) -> None:
        """The send queue stayed full for ``send_queue_timeout`` seconds."""
        self._log_close(f"closed: its send queue stayed full for "
                        f"{self.listener.options.send_queue_timeout}s (slow consumer)",
                        "slow_consumer")
        self._close_now("slow_consumer")

    def _close_now(self, why: str) -> None:
        """Close without waiting for the peer: it stopped reading (``slow_consumer``)
        or vanished (``heartbeat``)."""
        self.close()
        self._shutdown()

    def _log_close(self, why: str, kind: str) -> None:
        counters.errors[kind] += 1
        self.log.info("geworker: connection #%s from %s on %s %s",
                      self.id, self.remote_address, self.listener.url, why)

    # -- callback errors --------------------------------------------------

    def _call(self, func: Any, *args: Any) -> bool:
        """Call a user callback; if it raises, :meth:`_callback_failed` and return False."""
        try:
            func(*args)
            return True
        except Exception as exc:
            self._callback_failed(getattr(func, "__name__", "callback"), exc)
            return False

    def _callback_failed(self, name: str, exc: Exception) -> None:
        """The one path for an exception raised by a user callback named ``name``.

        Counts it, logs it with its traceback, hands it to ``on_error``, then
        ends the connection the way its protocol does (:meth:`_end_after_failure`).
        """
        report_callback_failure(self.log, self._callbacks, self, name, exc,
                                f"connection #{self.id} from {self.remote_address}")
        self._end_after_failure()

    def _end_after_failure(self) -> None:
        """After a callback failed: close (HTTP answers 500 first, WebSocket sends 1011)."""
        self.close()

    def _report_error(self, exc: Exception) -> None:
        """Hand an error that is not a callback's (e.g. SendBufferFull) to ``on_error``."""
        _call_on_error(self.log, self._callbacks, self, exc)

    def __repr__(self) -> str:
        return (f"<geworker.Connection #{self.id} {self.listener.url} "
                f"from {self.remote_address} {self._state.value}>")


def report_callback_failure(log: Any, callbacks: dict[str, Any], conn: Any, name: str,
                            exc: Exception, where: str) -> None:
    """Count, log with its traceback, and hand to ``on_error`` a callback's exception.

    Shared by stream connections and datagrams; ``where`` names the
    connection (or the datagram's sender) in the log line.
    """
    counters.errors["callback"] += 1
    log.error("geworker: %s raised on %s on %s", name, where, conn.listener.url, exc_info=exc)
    _call_on_error(log, callbacks, conn, exc)


def _call_on_error(log: Any, callbacks: dict[str, Any], conn: Any, exc: Exception) -> None:
    on_error = callbacks.get("on_error")
    if on_error is not None:
        try:
            on_error(conn, exc)
        except Exception:
            log.exception("geworker: on_error raised for %r", conn)
