"""Stream connections and the transport loop that serves them.

One greenlet per connection runs :meth:`Connection.serve`: read bytes, feed
the listener's sans-IO protocol, call ``on_message`` for each complete
message (in order), write what the protocol produced. User callbacks run in
that greenlet, so they may block without stalling other connections.

Writes never block the caller. ``send`` hands data straight to the kernel
when nothing is queued; whatever the kernel does not take is queued and a
writer greenlet flushes it. So any greenlet may call ``send`` (a broadcast
loop is never held up by one slow client), writes keep their order, and two
greenlets never wait on the same socket (gevent forbids that). The queue is
bounded by ``max_send_buffer_size``, as in Workerman: past it ``send`` drops
the message, returns False and reports :class:`SendBufferFull`.

A greenlet waiting in ``recv`` costs about 8 KB. A connection silent for
``park_after`` seconds therefore *parks*: the worker's sweep (see
:func:`park_idle`) ends its greenlet and leaves a libev read watcher on the
socket; the first readable byte (or EOF, or ``idle_timeout``) starts a new
greenlet that carries on the same read loop. A new connection with nothing
to read yet parks as soon as ``on_connect`` (and any handshake) is done.
Callbacks never notice.
"""

from __future__ import annotations

import contextlib
import enum
import itertools
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

import gevent
from gevent.event import Event

from ..errors import RemoteProtocolError, SendBufferFull
from ..protocols.base import Protocol
from ..stats import counters

if TYPE_CHECKING:
    from ..listener import Listener
    from ..server import Server

__all__ = ["Connection", "ConnectionState"]

RECV_SIZE = 65536
#: A connection whose reads keep finding data (so it never waits) yields to the
#: others once the hub has not polled for FAIR_SLICE seconds; checked every
#: FAIR_BATCHES batches. A yield costs a loop iteration and epoll updates, so
#: a busy but fair server (many connections, each a little behind) must not pay it.
FAIR_SLICE = 0.002
FAIR_BATCHES = 8
#: Seconds a draining worker waits for the first message of a brand-new connection.
FIRST_MESSAGE_GRACE = 1.0
_ids = itertools.count(1)
#: Connections of this process that have a greenlet: what :func:`park_idle` looks at.
_awake: dict[int, Connection] = {}


class _Parked(BaseException):
    """Thrown into a connection's greenlet waiting in ``recv``: end the greenlet, keep
    the connection (a BaseException, so that no ``except Exception`` stops it)."""


class _TLSSender:
    """``send`` on a TLS socket that raises BlockingIOError instead of waiting."""

    __slots__ = ("_sslobj",)

    def __init__(self, sslobj: Any) -> None:
        self._sslobj = sslobj

    def send(self, data: bytes) -> int:
        try:
            return int(self._sslobj.write(data))
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
            # OpenSSL must see these bytes again first: the writer greenlet
            # retries with a buffer that starts with them.
            raise BlockingIOError from None


def nonblocking_sender(sock: Any) -> Any:
    """An object whose ``send`` never waits: the raw socket under gevent's
    wrapper, or the TLS session of a gevent ``SSLSocket``."""
    sslobj = getattr(sock, "_sslobj", None)
    if sslobj is not None:
        return _TLSSender(sslobj)
    return getattr(sock, "_sock", sock)


class ConnectionState(enum.Enum):
    """Lifecycle of a connection: OPEN -> CLOSING -> CLOSED, never backwards."""

    OPEN = "ESTABLISHED"
    CLOSING = "CLOSING"
    CLOSED = "CLOSED"


OPEN, CLOSING, CLOSED = ConnectionState.OPEN, ConnectionState.CLOSING, ConnectionState.CLOSED


class Connection:
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

    __slots__ = (
        "__weakref__",
        "_buffer_full",
        "_busy",
        "_callbacks",
        "_close_timer",
        "_cork",
        "_draining",
        "_idle_mark",
        "_idle_since",
        "_in_recv",
        "_park_timer",
        "_parked",
        "_queue",
        "_queued",
        "_raw",
        "_reader",
        "_resume",
        "_writer",
        "bytes_read",
        "bytes_written",
        "context",
        "created",
        "id",
        "listener",
        "log",
        "protocol",
        "remote_address",
        "server",
        "socket",
        "state",
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
        self.protocol = listener.protocol.for_listener(listener.options)
        self.remote_address = remote_address
        self.context: dict[str, Any] = {}
        self.bytes_read = 0
        self.bytes_written = 0
        self.created = time.time()
        self.state = OPEN
        self.log = log or logging.getLogger("geworker")
        self._raw = nonblocking_sender(sock)
        self._queue: list[bytes] = []
        self._queued = 0
        self._writer: gevent.Greenlet | None = None
        self._buffer_full = False
        self._resume: Event | None = None
        self._busy = False
        self._draining = False
        self._close_timer: Any = None
        self._cork: list[bytes] | None = None
        self._in_recv = False  # blocked in the read loop's recv (or its wait)
        self._reader: Any = None  # the greenlet serving it (None while parked)
        self._parked = False
        self._park_timer: Any = None
        self._idle_mark = -1  # bytes_read when a sweep first saw it waiting
        self._idle_since = 0.0
        self._callbacks = server.callbacks

    # -- public API -----------------------------------------------------

    @property
    def local_address(self) -> Any:
        """The local socket address."""
        try:
            return self.socket.getsockname()
        except OSError:
            return None

    @property
    def send_queue_size(self) -> int:
        """Bytes accepted by :meth:`send` that the kernel has not taken yet."""
        return self._queued

    def send(self, message: Any) -> bool:
        """Encode ``message`` with the listener's protocol and send it.

        Safe from any greenlet; never blocks. Returns True when the data was
        written or queued, False when the connection is closing or closed,
        or the send queue is full (the message is then dropped and
        ``on_error`` gets a :class:`~geworker.errors.SendBufferFull`).

        Raises:
            LocalProtocolError: when the protocol cannot encode ``message``.
        """
        if self.state is not OPEN:
            return False
        return self.send_raw(self.protocol.encode(message))

    def send_raw(self, data: bytes) -> bool:
        """Send bytes as they are, bypassing the protocol's encoder."""
        if self.state is CLOSED:
            return False
        counters.messages_out += 1
        cork = self._cork
        if cork is not None:
            cork.append(data)
            if len(cork) == 1:
                # Written when this batch is done, or as soon as a callback
                # blocks (the hub runs its callbacks then): never held longer.
                gevent.get_hub().loop.run_callback(self._uncork)
            return True
        return self._write(data)

    def _write(self, data: bytes) -> bool:
        if self._writer is not None:
            return self._enqueue(data)
        try:
            sent = self._raw.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._shutdown()
            return False
        self.bytes_written += sent
        counters.bytes_out += sent
        if sent < len(data):
            self._queue.append(data[sent:])
            self._queued = len(data) - sent
            self._writer = gevent.spawn(self._flush)
            self._check_full()
        return True

    def close(self, message: Any = None) -> None:
        """Send ``message`` (if given), flush what is queued, then close.

        Receiving stops at once. Queued data gets ``close_timeout`` seconds
        to reach the peer. ``on_close`` runs in the connection's greenlet.
        """
        if self.state is not OPEN:
            return
        if message is not None:
            self.send(message)
        self._uncork()
        self.state = CLOSING
        if self._writer is None:
            self._shutdown()
        else:
            timer = self._close_timer = gevent.get_hub().loop.timer(
                self.listener.options.close_timeout)
            timer.start(self._shutdown)

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
        return self._parked

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
        self.server.connections.pop(self.id, None)
        _awake.pop(self.id, None)
        counters.connections_accepted -= 1
        self.state = CLOSED

    # -- the transport loop --------------------------------------------

    def serve(self) -> None:
        """Run the connection until it closes or parks; ``on_close`` runs exactly once."""
        self.server.connections[self.id] = _awake[self.id] = self
        counters.connections_accepted += 1
        self._run(self._serve)

    def abort(self) -> None:
        """End a parked connection now (its socket closes, ``on_close`` runs here).

        The worker calls this for what is left when ``graceful_timeout`` ends;
        connections with a greenlet end when it is killed.
        """
        if self._parked:
            self._unwatch()
            self._finish()

    def _run(self, part: Any) -> None:
        """Run ``part`` of the connection's life in this greenlet; unless it parks, finish."""
        self._reader = gevent.getcurrent()
        parked = False
        try:
            part()
        except _Parked:
            parked = True
        finally:
            self._reader = None
            if not parked:
                self._finish()
        if parked:
            self._watch()

    def _serve(self) -> None:
        if self._start():
            if self._nothing_to_read():
                # A new connection that has sent nothing yet parks at once: idle
                # clients then never hold a greenlet, not even for park_after.
                self._prepare_reading()  # (sets the idle_timeout the parked wait keeps)
                self._idle_since = time.monotonic()
                raise _Parked
            self._read_loop()

    def _start(self) -> bool:
        """Before the read loop: ``on_connect`` (subclasses add handshakes). False ends."""
        on_connect = self._callbacks.get("on_connect")
        if on_connect is not None and not self._run_callback(on_connect, self):
            return False
        if self.server.draining:
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
        while True:
            if self._resume is not None:
                self._resume.wait()
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
            if self.state is not OPEN:
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
            if loop.iteration == iteration:
                batches += 1
                if batches % FAIR_BATCHES == 0 and time.time() - loop.now() > FAIR_SLICE:
                    gevent.sleep(0)  # (loop.now() is when the hub last polled)
            else:
                iteration, batches = loop.iteration, 0
            self._batch_done()

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

    def _idle_timed_out(self) -> bool:
        """``idle_timeout`` passed with nothing received; True keeps reading."""
        self._log_close("closed after idle_timeout", "idle_timeout")
        return False

    # -- parking ----------------------------------------------------------

    def _sweep(self, now: float) -> bool:
        """Called by :func:`park_idle` in the hub: park if silent for ``park_after``."""
        if not self._in_recv or self._parked:
            return False
        if self.bytes_read != self._idle_mark:
            self._idle_mark, self._idle_since = self.bytes_read, now
            return False
        after = self.listener.options.park_after
        if after is None or now - self._idle_since < after or not self._can_park():
            return False
        sock: Any = self.socket
        if not sock._read_event.active:
            return False  # waiting for something else than input (a TLS write)
        self._reader.throw(_Parked)  # it unwinds, runs _watch and ends; then we are back
        return True

    def _can_park(self) -> bool:
        """Only a plain wait for input parks: nothing in progress, queued or buffered."""
        sock = self.socket
        return (self.state is OPEN and self._resume is None and self._writer is None
                and not self._busy and not self._draining and self._reader is not None
                and hasattr(sock, "_read_event") and not self.protocol.has_partial_message
                and not (hasattr(sock, "pending") and sock.pending()))

    def _nothing_to_read(self) -> bool:
        """True when the first read would wait and the connection may park instead."""
        if self.listener.options.park_after is None or not self._can_park():
            return False
        sock: Any = self.socket
        try:
            sock._sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return True
        except OSError:
            pass  # the read loop sees the error
        return False  # data or EOF: read it now

    def _watch(self) -> None:
        """Parked: wait for input (or ``idle_timeout``) on the socket's own read watcher."""
        self._parked = True
        self._in_recv = False
        _awake.pop(self.id, None)
        counters.connections_parked += 1
        sock: Any = self.socket
        sock._read_event.start(self._unpark, False)
        timeout = sock.gettimeout()
        if timeout is not None:
            left = max(0.0, timeout - (time.monotonic() - self._idle_since))
            self._park_timer = gevent.get_hub().loop.timer(left)
            self._park_timer.start(self._unpark, True)

    def _unwatch(self) -> None:
        self._parked = False
        counters.connections_parked -= 1
        sock: Any = self.socket
        sock._read_event.stop()
        if self._park_timer is not None:
            self._park_timer.close()
            self._park_timer = None

    def _unpark(self, timed_out: bool) -> None:
        """In the hub: input arrived (or ``idle_timeout`` passed): serve in a new greenlet."""
        self._unwatch()
        _awake[self.id] = self
        self._idle_mark = -1
        spawn = self.server.spawn or gevent.spawn
        spawn(self._run, self._idle_then_read if timed_out else self._read_loop)

    def _idle_then_read(self) -> None:
        if self._idle_timed_out():
            self._read_loop()

    def _batch_done(self) -> None:
        """After each received chunk: close if the protocol is done, or drain."""
        if self.protocol.closed:
            self.close()
        elif self._draining and not self.protocol.has_partial_message:
            self._go_away()

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
            if self.state is not OPEN:
                break
        self._busy = False
        return True

    def _finish(self) -> None:
        """Flush what is queued, close the socket, run ``on_close`` once."""
        if self.state is CLOSED:
            return
        self._uncork()
        self._cork = None
        self.state = CLOSING
        writer = self._writer
        if writer is not None:
            writer.join(timeout=self.listener.options.close_timeout)
            writer.kill(block=False)
        if self._close_timer is not None:
            self._close_timer.close()
        self.state = CLOSED
        self.server.connections.pop(self.id, None)
        _awake.pop(self.id, None)
        counters.connections_closed += 1
        with contextlib.suppress(OSError):
            self.socket.close()
        on_close = self._callbacks.get("on_close")
        if on_close is not None:
            self._run_callback(on_close, self, close=False)

    # -- helpers ------------------------------------------------------

    def _uncork(self) -> None:
        """Write what was corked, in one piece (corking stays on if it was)."""
        cork = self._cork
        if cork:
            self._cork = []
            self._write(b"".join(cork) if len(cork) > 1 else cork[0])

    def _join_writer(self, timeout: float | None) -> bool:
        """Write what is corked, then wait up to ``timeout`` for the writer greenlet.

        True once everything sent so far was handed to the kernel.
        """
        self._uncork()
        writer = self._writer
        if writer is not None:
            writer.join(timeout=timeout)
        return self._writer is None

    def _go_away(self) -> None:
        if self.state is OPEN:
            bye = self.protocol.going_away()
            if bye:
                self.send_raw(bye)
            self.close()

    def _flush(self) -> None:
        """Writer greenlet: write the queue out, in order, then exit."""
        try:
            while self._queue:
                chunk = b"".join(self._queue) if len(self._queue) > 1 else self._queue[0]
                self._queue = []
                self.socket.sendall(chunk)
                self.bytes_written += len(chunk)
                counters.bytes_out += len(chunk)
                self._queued -= len(chunk)
        except OSError:
            self._queue = []
            self._shutdown()
        finally:
            self._queued = 0
            self._writer = None
        if self.state is CLOSING:
            self._shutdown()
        elif self._buffer_full and self.state is OPEN:
            self._buffer_full = False
            on_drain = self._callbacks.get("on_buffer_drain")
            if on_drain is not None:
                self._run_callback(on_drain, self)

    def _enqueue(self, data: bytes) -> bool:
        if self._queued >= self.listener.options.max_send_buffer_size:
            counters.send_failures += 1
            counters.messages_out -= 1
            self._report(SendBufferFull(
                f"send queue full ({self._queued} bytes); message of {len(data)} bytes dropped"))
            return False
        self._queue.append(data)
        self._queued += len(data)
        self._check_full()
        return True

    def _check_full(self) -> None:
        if not self._buffer_full and self._queued >= self.listener.options.max_send_buffer_size:
            self._buffer_full = True
            on_full = self._callbacks.get("on_buffer_full")
            if on_full is not None:
                self._run_callback(on_full, self)

    def _shutdown(self, *_: Any) -> None:
        """Shut the socket both ways: the reading greenlet wakes up with EOF."""
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

    def _log_close(self, why: str, kind: str) -> None:
        counters.errors[kind] += 1
        self.log.info("geworker: connection #%s from %s on %s %s",
                      self.id, self.remote_address, self.listener.url, why)

    def _run_callback(self, func: Any, *args: Any, close: bool = True) -> bool:
        """Call a user callback; on exception log, report and (optionally) close."""
        try:
            func(*args)
            return True
        except Exception as exc:
            if close:
                self._callback_failed(getattr(func, "__name__", "callback"), exc)
            else:
                self.log.exception("geworker: %s raised on connection #%s", func, self.id)
            return False

    def _callback_failed(self, name: str, exc: Exception) -> None:
        self._report_failure(name, exc)
        self.close()

    def _report_failure(self, name: str, exc: Exception) -> None:
        """Count, log with the traceback, and hand to ``on_error`` a callback's exception."""
        counters.errors["callback"] += 1
        self.log.exception("geworker: %s raised on connection #%s from %s; closing it",
                           name, self.id, self.remote_address)
        self._report(exc)

    def _report(self, exc: Exception) -> None:
        on_error = self._callbacks.get("on_error")
        if on_error is not None:
            try:
                on_error(self, exc)
            except Exception:
                self.log.exception("geworker: on_error raised on connection #%s", self.id)

    def __repr__(self) -> str:
        return (f"<geworker.Connection #{self.id} {self.listener.url} "
                f"from {self.remote_address} {self.state.value}>")


def park_idle(limit: int) -> int:
    """Park up to ``limit`` connections silent for their ``park_after``; returns how many.

    Must run in the hub (a loop timer's callback): throwing into a waiting
    greenlet from there returns as soon as that greenlet has ended.
    """
    now = time.monotonic()
    parked = 0
    for conn in list(_awake.values()):
        if conn._sweep(now):
            parked += 1
            if parked == limit:
                break
    return parked
