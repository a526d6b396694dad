"""UDP clients: what ``geworker.connect("udp://host:port")`` returns.

A :class:`DatagramClient` has a connected UDP socket (its default
destination set, so only the server's datagrams come back to it) and the
client API of stream connections, so code moves between ``tcp://`` and
``udp://`` by changing the scheme:

* ``send(message)`` encodes one message with the URL's protocol and sends it
  as one datagram (up to 65,507 bytes over IPv4); ``send_raw(data)`` sends
  bytes as they are;
* each datagram received is decoded by a fresh protocol instance (as on the
  server side) and its messages go to ``on_message``, or to ``receive()``
  without it;
* ``on_connect`` runs once the socket is ready (the name resolved, the
  destination set: no packet is exchanged, UDP has no handshake) and
  ``on_close`` once ``close()`` is called. A name that does not resolve
  gives ``on_error(conn, DNSError)`` and neither of them;
* an ICMP "port unreachable" for an earlier datagram (nothing listens
  there) reaches ``on_error`` as :class:`~geworker.errors.ConnectRefused`
  and the client stays open: UDP servers come and go. A request whose answer
  never comes is what ``receive(timeout)`` is for.

There is no reconnect (nothing to reconnect) and no send queue: a datagram
the kernel cannot take now is dropped and counted, as UDP does anyway.
"""

from __future__ import annotations

import itertools
import logging
import socket
from typing import TYPE_CHECKING, Any

import gevent
import gevent.socket
from gevent.event import Event

from ..errors import ConnectError, ConnectionClosed, ConnectRefused, DNSError, RemoteProtocolError
from ..stats import counters
from .blocking import BlockingStyle, Inbox
from .client import ClientCallback
from .connection import report_callback_failure
from .datagram import MAX_DATAGRAM_SIZE, decode_datagram
from .state import ConnectionState

if TYPE_CHECKING:
    from ..listener import Listener
    from .outbound import Endpoint

__all__ = ["DatagramClient"]

_ids = itertools.count(1)
_CONNECTING = ConnectionState.CONNECTING
_OPEN = ConnectionState.OPEN
_CLOSED = ConnectionState.CLOSED


class DatagramClient(BlockingStyle):
    """A UDP client (see the module documentation).

    Attributes:
        id: unique among this process's UDP clients.
        listener: the parsed URL (``listener.url``, ``listener.protocol``).
        endpoint: where it sends.
        protocol: the protocol instance that encodes what it sends.
        remote_address: the server's address (resolved once ready).
        context: a dict for the application's data.
        sends_refused: messages refused because it was not open.
        send_failures: datagrams the kernel refused (too big, no route...).
        last_error: the :class:`~geworker.errors.ConnectError` if the name
            did not resolve, else None.
    """

    __slots__ = ("__weakref__", "_callbacks", "_ended", "_inbox", "_opened", "_reader",
                 "_resume", "_state", "_waiters", "context", "endpoint", "id", "last_error",
                 "listener", "log", "protocol", "remote_address", "send_failures",
                 "sends_refused", "socket")

    on_connect = ClientCallback()
    on_message = ClientCallback()
    on_close = ClientCallback()
    on_error = ClientCallback()
    on_buffer_full = ClientCallback()
    on_buffer_drain = ClientCallback()

    def __init__(self, listener: Listener, endpoint: Endpoint, log: Any = None) -> None:
        self.id = next(_ids)
        self.listener = listener
        self.endpoint = endpoint
        self.protocol = listener.protocol.for_listener(listener.options)
        self.remote_address: Any = endpoint.address
        self.context: dict[str, Any] = {}
        self.log = log or logging.getLogger("geworker")
        self.socket: Any = None
        self.sends_refused = 0
        self.send_failures = 0
        self.last_error: ConnectError | None = None
        self._state = _CONNECTING
        self._callbacks: dict[str, Any] = {}
        self._reader: Any = None
        self._resume: Event | None = None
        self._waiters = 0
        self._ended = Event()
        self._opened = Event()
        self._inbox = Inbox(self.pause_recv, self.resume_recv)

    # -- public API -------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """``CONNECTING`` (resolving), ``OPEN``, then ``CLOSED``."""
        state: ConnectionState = self._state
        return state

    @property
    def local_address(self) -> Any:
        """The local socket address (None until ready)."""
        try:
            return None if self.socket is None else self.socket.getsockname()
        except OSError:
            return None

    @property
    def send_queue_size(self) -> int:
        """Always 0: a datagram is sent at once or dropped."""
        return 0

    @property
    def max_send_buffer_size(self) -> int:
        """The listener option (a UDP client queues nothing)."""
        return int(self.listener.options.max_send_buffer_size)

    def start(self) -> DatagramClient:
        """Resolve and set up the socket, in a new greenlet (``geworker.connect`` calls it)."""
        if self._reader is None and self._state is _CONNECTING:
            self._reader = gevent.spawn(self._run)
        return self

    def send(self, message: Any) -> bool:
        """Send ``message``, encoded by the URL's protocol, in one datagram; False if not sent.

        Raises:
            LocalProtocolError: when the protocol cannot encode ``message``.
        """
        if self._state is not _OPEN:
            self.sends_refused += 1
            counters.errors["send_refused"] += 1
            return False
        return self.send_raw(self.protocol.encode(message))

    def send_raw(self, data: bytes) -> bool:
        """Send bytes as they are, in one datagram; False if not sent."""
        if self._state is not _OPEN:
            self.sends_refused += 1
            counters.errors["send_refused"] += 1
            return False
        try:
            self.socket.send(data)
        except ConnectionRefusedError:  # an ICMP error for an earlier datagram
            self._unreachable()
            return False
        except OSError as exc:  # too big, no buffer, no route
            self.send_failures += 1
            counters.send_failures += 1
            self.log.info("geworker: a %d-byte datagram to %s was not sent: %s", len(data),
                          self.listener.url, exc)
            return False
        counters.messages_out += 1
        counters.bytes_out += len(data)
        return True

    def close(self, message: Any = None) -> None:
        """Send ``message`` (if given), then close the socket; ``on_close`` runs once."""
        state = self._state
        if state is _CLOSED:
            return
        if message is not None and state is _OPEN:
            self.send(message)
        self._state = _CLOSED
        self._opened.clear()
        reader = self._reader
        if reader is not None and reader is not gevent.getcurrent():
            reader.kill(block=False)
        if self.socket is not None:
            self.socket.close()
            on_close = self._callbacks.get("on_close")
            if on_close is not None and state is _OPEN:
                self._call("on_close", on_close, self)
        self._ended.set()

    def pause_recv(self) -> None:
        """Stop reading datagrams until :meth:`resume_recv` (the kernel buffers, then drops)."""
        if self._resume is None:
            self._resume = Event()

    def resume_recv(self) -> None:
        """Read datagrams again."""
        resume, self._resume = self._resume, None
        if resume is not None:
            resume.set()

    def _use_callbacks(self, callbacks: dict[str, Any]) -> None:
        self._callbacks = callbacks

    # -- the reader -------------------------------------------------------

    def _run(self) -> None:
        try:
            if self._open():
                self._read()
        finally:
            self._reader = None

    def _open(self) -> bool:
        endpoint = self.endpoint
        try:
            with gevent.Timeout(endpoint.connect_timeout, DNSError(
                    endpoint.url, f"cannot resolve {endpoint.host!r} within "
                    f"{endpoint.connect_timeout}s")):
                infos = gevent.socket.getaddrinfo(endpoint.host, endpoint.port, 0,
                                                  socket.SOCK_DGRAM)
        except socket.gaierror as exc:
            error: ConnectError = DNSError(endpoint.url, f"cannot resolve host "
                                           f"{endpoint.host!r}: {exc.strerror}")
            return self._failed(error)
        except DNSError as exc:
            return self._failed(exc)
        family, kind, proto, _, address = infos[0]
        sock = gevent.socket.socket(family, kind, proto)
        try:
            sock.connect(address)  # (no packet: sets the destination, and the source filter)
        except OSError as exc:
            sock.close()
            return self._failed(ConnectError(endpoint.url, f"cannot send to {address}: {exc}"))
        if self._state is not _CONNECTING:  # closed meanwhile
            sock.close()
            return False
        self.socket, self.remote_address = sock, address
        self._state = _OPEN
        self._opened.set()
        on_connect = self._callbacks.get("on_connect")
        return on_connect is None or self._call("on_connect", on_connect, self)

    def _failed(self, error: ConnectError) -> bool:
        self.last_error = error
        counters.errors[f"connect_{error.kind}"] += 1
        self._state = _CLOSED
        if "on_error" in self._callbacks:
            self._report_error(error)
        elif not self._waiters:
            self.log.warning("geworker: %s", error)
        self._ended.set()
        return False

    def _read(self) -> None:
        recv = self.socket.recv
        while self._state is _OPEN:
            if self._resume is not None:
                self._resume.wait()
                continue
            try:
                data = recv(MAX_DATAGRAM_SIZE)
            except ConnectionRefusedError:
                self._unreachable()
                continue
            except OSError:
                if self._state is _OPEN:
                    self.close()
                return
            counters.datagrams_in += 1
            counters.bytes_in += len(data)
            self._handle(data)

    def _handle(self, data: bytes) -> None:
        """One datagram: a fresh protocol decodes it, as on a server."""
        listener = self.listener
        try:
            messages = decode_datagram(listener.protocol.for_listener(listener.options), data)
        except RemoteProtocolError as exc:
            counters.errors[type(exc).__name__] += 1
            self.log.warning("geworker: dropped a %d-byte datagram from %s: %s", len(data),
                             listener.url, exc.reason)
            return
        counters.messages_in += len(messages)
        on_message = self._callbacks.get("on_message")
        if on_message is None:
            self._inbox.put(messages)
            return
        for message in messages:
            if not self._call("on_message", on_message, self, message):
                return

    def _unreachable(self) -> None:
        counters.errors["connect_refused"] += 1
        self._report_error(ConnectRefused(self.listener.url, "the last datagram was refused "
                                          "(ICMP port unreachable: nothing listens there?)"))

    # -- callbacks --------------------------------------------------------

    def _call(self, name: str, func: Any, *args: Any) -> bool:
        try:
            func(*args)
            return True
        except Exception as exc:
            report_callback_failure(self.log, self._callbacks, self, name, exc,
                                    f"UDP client to {self.remote_address}")
            return False

    def _report_error(self, exc: Exception) -> None:
        on_error = self._callbacks.get("on_error")
        if on_error is not None:
            try:
                on_error(self, exc)
            except Exception:
                self.log.exception("geworker: on_error raised for %r", self)

    def _closed_error(self) -> ConnectionClosed:
        return ConnectionClosed(f"{self.listener.url}: the UDP client is closed")

    def __repr__(self) -> str:
        return f"<geworker.DatagramClient #{self.id} {self.listener.url} {self._state.value}>"
