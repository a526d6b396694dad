"""The sending half of a stream connection: never blocking the caller, never reordering.

``send_raw`` hands data straight to the kernel when nothing is queued, through
a sender whose ``send`` never waits (:func:`nonblocking_sender`: the OS socket
under gevent's wrapper, or the TLS session of an ``SSLSocket``). Whatever the
kernel does not take is queued, and a writer greenlet (:meth:`Writer._flush`)
writes the queue out with gevent's waiting ``sendall``. So any greenlet may
send (a broadcast loop is never held up by one slow client), bytes keep their
order, and two greenlets never wait on the same socket (gevent forbids that).

The queue is bounded by ``max_send_buffer_size``, as in Workerman: reaching it
runs ``on_buffer_full``; past it a message is dropped, ``send`` returns False
and ``on_error`` gets :class:`~geworker.errors.SendBufferFull`; once the queue
is written out, ``on_buffer_drain`` runs.

*Corking* joins the answers to one received batch into one write: while
``_cork`` is a list, ``send_raw`` appends to it, and :meth:`Writer._uncork`
writes it in one piece when the batch is done, or as soon as a callback
blocks (a hub callback is scheduled on the first corked write), so nothing is
held back longer than the batch takes.

:class:`Writer` is a mixin of :class:`~geworker.transport.connection.Connection`
rather than an object it owns: ``send_raw`` is on the per-message path, and
this keeps it one method call with no attribute hop.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

import gevent

from ..errors import SendBufferFull
from ..stats import counters
from . import _gevent
from .state import ConnectionState

if TYPE_CHECKING:
    from ..listener import Listener

__all__ = ["Writer", "nonblocking_sender"]

_OPEN = ConnectionState.OPEN
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED
_HANDED_OFF = ConnectionState.HANDED_OFF


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
    """An object whose ``send`` never waits: the OS socket under gevent's
    wrapper, or the TLS session of a gevent ``SSLSocket``."""
    session = _gevent.tls_session(sock)
    if session is not None:
        return _TLSSender(session)
    return _gevent.os_socket(sock)


class Writer:
    """The send queue, corking and the writer greenlet of a connection (a mixin).

    The class it is mixed into provides the attributes annotated below and
    :meth:`_shutdown`, :meth:`_call` and :meth:`_report_error`. Its own state
    (orthogonal to the lifecycle: an open, parked or closing connection may
    have a queue) is:

    * ``bytes_written``: what the kernel took (public, on the connection);

    * ``_queue``/``_queued``: bytes the kernel has not taken yet, and how many;
    * ``_flusher``: the writer greenlet while the queue is not empty;
    * ``_buffer_full``: ``on_buffer_full`` ran and ``on_buffer_drain`` is due;
    * ``_cork``: a list while the answers to a batch are being collected.
    """

    __slots__ = ("_buffer_full", "_cork", "_flusher", "_full_timer", "_queue", "_queued",
                 "_raw", "bytes_written")

    socket: Any
    listener: Listener
    _state: ConnectionState
    _callbacks: dict[str, Any]

    def _init_writer(self, sock: Any) -> None:
        self.bytes_written = 0
        self._raw: Any = nonblocking_sender(sock)
        self._queue: list[bytes] = []
        self._queued = 0
        self._flusher: gevent.Greenlet | None = None
        self._buffer_full = False
        self._full_timer: Any = None
        self._cork: list[bytes] | None = None

    @property
    def send_queue_size(self) -> int:
        """Bytes accepted by ``send`` that the kernel has not taken yet."""
        return self._queued

    def send_raw(self, data: bytes) -> bool:
        """Send bytes as they are, bypassing the protocol's encoder.

        Safe from any greenlet; never blocks. Returns False once the
        connection is closed, or when the send queue is full.
        """
        state = self._state
        if state is not _OPEN and (state is _CLOSED or state is _HANDED_OFF):
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
        if self._flusher is not None:
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
            self._flusher = gevent.spawn(self._flush)
            self._check_full()
        return True

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
        flusher = self._flusher
        if flusher is not None:
            flusher.join(timeout=timeout)
        return self._flusher is None

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
            self._flusher = None
        if self._state is _CLOSING:
            self._shutdown()
        elif self._buffer_full and self._state.is_open:
            self._buffer_full = False
            self._stop_full_timer()
            on_drain = self._callbacks.get("on_buffer_drain")
            if on_drain is not None:
                self._call(on_drain, self)

    def _enqueue(self, data: bytes) -> bool:
        if self._queued >= self.listener.options.max_send_buffer_size:
            counters.send_failures += 1
            counters.messages_out -= 1
            self._report_error(SendBufferFull(
                f"send queue full ({self._queued} bytes); message of {len(data)} bytes dropped"))
            return False
        self._queue.append(data)
        self._queued += len(data)
        self._check_full()
        return True

    def _check_full(self) -> None:
        options = self.listener.options
        if not self._buffer_full and self._queued >= options.max_send_buffer_size:
            self._buffer_full = True
            if options.send_queue_timeout is not None:
                timer = self._full_timer = gevent.get_hub().loop.timer(
                    options.send_queue_timeout)
                timer.start(self._full_too_long)
            on_full = self._callbacks.get("on_buffer_full")
            if on_full is not None:
                self._call(on_full, self)

    def _full_too_long(self) -> None:
        self._stop_full_timer()
        if self._buffer_full and self._state.is_open:
            self._slow_consumer()

    def _stop_full_timer(self) -> None:
        timer, self._full_timer = self._full_timer, None
        if timer is not None:
            timer.close()

    # -- provided by the connection ---------------------------------------

    def _shutdown(self, *_: Any) -> None:
        raise NotImplementedError

    def _slow_consumer(self) -> None:
        raise NotImplementedError

    def _call(self, func: Any, *args: Any) -> bool:
        raise NotImplementedError

    def _report_error(self, exc: Exception) -> None:
        raise NotImplementedError
