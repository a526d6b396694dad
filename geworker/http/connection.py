"""The transport loop of ``http://`` listeners.

:class:`HttpConnection` reads bytes, feeds :class:`~geworker.http.protocol.HttpProtocol`
and calls ``on_message(conn, request)`` (or the WSGI application mounted
with ``Server.mount_wsgi``) once per complete request, strictly in order
(keep-alive and pipelining). The callback answers with ``conn.send(...)``.

Timeouts follow the protocol's phase: ``http_head_timeout`` for a request
head (from the accept, or from the first byte of a keep-alive request),
``http_body_timeout`` for its body (both answered 408 and closed),
``http_keepalive_timeout`` between requests (closed quietly).

Error answers (400, 408, 413, 431, 501, 505; built by
:func:`~geworker.http.responses.error_response`) use a lingering close: the
answer is flushed, the write side shut, and what the client still sends is
read and dropped for a moment, so the client sees the answer instead of a
connection reset.

A request asking for ``Upgrade: websocket`` is handed to
``geworker.websocket.connection.upgrade_from_http`` (see
:mod:`geworker.http.protocol`).
"""

from __future__ import annotations

import socket
import time
from typing import TYPE_CHECKING, Any

import gevent
import gevent.socket

from ..errors import LocalProtocolError, RemoteProtocolError
from ..stats import counters
from ..transport import _gevent
from ..transport.connection import RECV_SIZE, Connection, ConnectionState
from .accesslog import AccessRecord, log_access
from .models import Request
from .protocol import BODY, HEAD, IDLE, HttpProtocol, encode_closing
from .responses import (
    OCTETS,
    TEXT,
    EventStream,
    FileResponse,
    HTTPError,
    Response,
    error_response,
    make_response,
)

if TYPE_CHECKING:
    from ..listener import Listener
    from ..server import Server

__all__ = ["HttpConnection"]

#: How long, and how many bytes, a lingering close reads and drops.
#: Corked answers to pipelined requests are written once they reach this many bytes.
CORK_BYTES = 64 * 1024
LINGER_SECONDS = 2.0
LINGER_BYTES = 4 * 1024 * 1024

_TEXT = TEXT.encode()
_OCTETS = OCTETS.encode()
_monotonic = time.monotonic
_OPEN = ConnectionState.OPEN  # (a global reads faster than the enum attribute)


class HttpConnection(Connection):
    """One HTTP/1.1 client connection.

    Attributes:
        request: the :class:`~geworker.http.Request` being answered (the
            last one, between requests).
    """

    __slots__ = ("_access", "_armed_until", "_ctype", "_cycle", "_deadline", "_handler",
                 "_read_event",
                 "_response", "_sent", "_started", "_started_at", "_status", "_stream_open",
                 "_timer", "request")

    protocol: HttpProtocol
    #: Messaging never writes to a plain HTTP connection (only to its WebSocket upgrade).
    accepts_messages = False

    def __init__(self, sock: socket.socket, remote_address: Any, listener: Listener,
                 server: Server, log: Any = None) -> None:
        super().__init__(sock, remote_address, listener, server, log)
        self.protocol.remote_address = remote_address
        self.request: Request | None = None
        self._started = False
        self._stream_open = False
        self._response: Response | None = None
        self._ctype = TEXT
        self._status = 0
        self._sent = 0
        self._started_at = 0.0
        self._deadline: float | None = None  # when the current phase times out
        self._timer: Any = None
        self._armed_until = 0.0  # when the armed timer fires
        self._read_event: Any = None
        self._cycle: tuple[int, Any] = (0, IDLE)
        self._handler = getattr(server, "http_handler", None) or self._callbacks.get("on_message")
        # gunicorn's Logger says whether access logging is configured at all.
        self._access = bool(getattr(self.log, "access_log_enabled", False))

    @property
    def is_open(self) -> bool:
        """True while the connection can send (what an :class:`EventStream` sink tells)."""
        return self.state is ConnectionState.OPEN

    # -- answering ----------------------------------------------------------

    def send(self, message: Any) -> bool:
        """Answer the current request.

        ``message`` is a :class:`~geworker.http.Response` (or subclass:
        :class:`~geworker.http.FileResponse`, :class:`~geworker.http.EventStream`)
        or a shortcut: ``str``, ``bytes``, ``dict``/``list`` (JSON). Streamed
        and file bodies are written before this returns, waiting for the
        client to read as needed. Returns False when the connection is closed.

        Raises:
            LocalProtocolError: when the request was already answered, or for
                an invalid response (e.g. CR/LF in a header value).
        """
        if self._state is not _OPEN:
            return False
        if self._started:
            raise LocalProtocolError("this request was already answered")
        if self.request is None:
            raise LocalProtocolError("there is no request to answer on this connection")
        protocol = self.protocol
        if self._draining or self._runtime.draining:
            protocol.keep_alive = False
        # Earlier (pipelined) answers still queued past the limit: wait rather than drop one.
        if (self._queued >= self.listener.options.max_send_buffer_size
                and not self._wait_writable()):
            return False
        kind = type(message)
        if kind is str or kind is bytes:  # the hot path
            if kind is str:
                body = message.encode()
                data = protocol.simple_response(body, _TEXT)
                self._ctype = TEXT
            else:
                body = message
                data = protocol.simple_response(body, _OCTETS)
                self._ctype = OCTETS
            self._started = True
            self._status = 200
            self._sent = len(body)
            ok = self.send_raw(data)
            self._done()
            return ok
        return self._send_response(make_response(message))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything sent so far was handed to the kernel.

        Returns False when the connection closed or ``timeout`` expired first.
        """
        return self._join_writer(timeout) and self._state is _OPEN

    def _send_response(self, response: Response) -> bool:
        protocol = self.protocol
        self._response = response
        if isinstance(response, EventStream):
            head, _ = protocol.encode_head(response, None, chunk=False)
            self._started = True
            self._status = response.status
            if protocol.head_only:
                response.attach(self)  # events pushed from now on are dropped
                ok = self.send_raw(head)
                self._done()
                return ok
            self._stream_open = True
            ok = self.send_raw(head + response.attach(self))
            if self._access:
                self._log_access()
            return ok
        if isinstance(response, FileResponse):
            return self._send_file(response)
        body = response.body
        if isinstance(body, bytes):
            data = protocol.encode(response)
            self._started = True
            self._status = response.status
            self._sent = len(body)
            ok = self.send_raw(data)
            self._done()
            return ok
        return self._send_iterable(response, body)

    def _send_iterable(self, response: Response, body: Any) -> bool:
        protocol = self.protocol
        head, chunked = protocol.encode_head(response, None)
        declared = response.get_header("content-length")
        self._started = True
        self._status = response.status
        ok = self.send_raw(head)
        sent = 0
        if ok and not protocol.head_only and response.status not in (204, 304):
            for chunk in body:
                if isinstance(chunk, str):
                    chunk = chunk.encode()
                if not chunk:
                    continue
                sent += len(chunk)
                if chunked:
                    chunk = b"%x\r\n%b\r\n" % (len(chunk), chunk)
                if not self.send_raw(chunk) or not self._wait_writable():
                    ok = False
                    break
            if ok and chunked:
                ok = self.send_raw(b"0\r\n\r\n")
            if declared is not None and declared.strip() != str(sent):
                self.log.warning("geworker: response body of %s bytes for Content-Length %s "
                                 "on connection #%s; closing it", sent, declared, self.id)
                protocol.keep_alive = False
        self._sent = sent
        self._done()
        return ok

    def _send_file(self, response: FileResponse) -> bool:
        try:
            short, f, length = response.prepare(self.request)
        except HTTPError as exc:
            return self._send_response(exc.response())
        if short is not None or f is None:
            return self._send_response(short or Response(b"", 404))
        try:
            head, _ = self.protocol.encode_head(response, length)
            self._started = True
            self._status = response.status
            ok = self.send_raw(head)
            remaining = 0 if self.protocol.head_only else length
            while ok and remaining > 0:
                chunk = f.read(min(response.chunk_size, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                ok = self.send_raw(chunk) and self._wait_writable()
            if remaining:
                self.protocol.keep_alive = False  # the file shrank or the client left
        finally:
            f.close()
        self._sent = length
        self._done()
        return ok

    def _wait_writable(self) -> bool:
        """Between chunks: wait while the kernel cannot take more (bounded)."""
        if not self._join_writer(self.listener.options.http_body_timeout):
            self.log.info("geworker: connection #%s from %s stopped reading a response; "
                          "closing it", self.id, self.remote_address)
            self._shutdown()
            return False
        return self._state is _OPEN

    def _done(self) -> None:
        """The response is complete: log it, and close unless keep-alive."""
        if self._access:
            self._log_access()
        if not self.protocol.keep_alive:
            self.close()

    # -- the transport loop ---------------------------------------------------

    def _serve(self) -> None:
        try:
            super()._serve()
        finally:
            self._disarm()

    def _prepare_reading(self) -> None:
        # Timeouts: one lazily re-armed timer per connection instead of a
        # timeout on every blocking recv (gevent allocates a timer for each).
        sock = self.socket
        sock.settimeout(None)
        # Plain gevent sockets only: TLS may hold decrypted bytes the fd does not show.
        self._read_event = (_gevent.read_watcher(sock)
                            if type(sock) is gevent.socket.socket else None)
        # The first head must arrive within head_timeout of the accept.
        self._deadline = _monotonic() + self.listener.options.http_head_timeout
        self._cycle = (0, IDLE)

    def _can_park(self) -> bool:
        return False  # its deadlines run on the connection's own timer and greenlet

    def _before_recv(self) -> bool:
        """Follow the request cycle's deadline; wait for the next request once answered."""
        protocol = self.protocol
        phase = protocol.phase
        cycle = self._cycle
        if phase is not cycle[1] or protocol.requests != cycle[0]:
            if not (phase is HEAD and cycle == (0, IDLE)):
                options = self.listener.options
                if phase is IDLE:
                    self._deadline = _monotonic() + options.http_keepalive_timeout
                elif phase is HEAD:
                    self._deadline = _monotonic() + options.http_head_timeout
                elif phase is BODY:
                    self._deadline = _monotonic() + options.http_body_timeout
                else:
                    self._deadline = None
            cycle = self._cycle = (protocol.requests, phase)
        deadline = self._deadline
        if deadline is not None and self._timer is not None and deadline < self._armed_until:
            self._timer.close()  # an earlier deadline (the first keep-alive wait): re-arm
            self._timer = None
        if deadline is not None and self._timer is None:
            remaining = deadline - _monotonic()
            if remaining <= 0:
                if self._state is _OPEN:
                    self._timed_out(phase)
                return False
            self._arm(remaining)
        if self._read_event is not None and phase is IDLE and cycle[0]:
            # Answered, nothing buffered: the next request is not here yet.
            # Waiting first spares gevent's recv a failed read and its exception.
            gevent.get_hub().wait(self._read_event)
        return True

    def _idle_timed_out(self) -> bool:
        if self._state is _OPEN:
            self._timed_out(self.protocol.phase)
        return False

    def _handle(self, messages: list[Any]) -> bool:
        """Answer each complete request, then the ones pipelined behind it.

        Answers to pipelined requests are corked: written together, in one
        send, once the batch is answered (or earlier: past ``CORK_BYTES``,
        or when a callback waits).
        """
        protocol = self.protocol
        try:
            while messages:
                if not self._dispatch(messages):
                    return False
                if self._state is not _OPEN or self._stream_open:
                    break
                messages = protocol.next_cycle()
                out = protocol.data_to_send()
                if out:
                    self.send_raw(out)
                cork = self._cork
                if cork is None:
                    if messages:
                        self._cork = []
                elif sum(map(len, cork)) >= CORK_BYTES:
                    self._uncork()
        except RemoteProtocolError as exc:
            self._reject(exc)
            return False
        finally:
            if self._cork is not None:
                self._uncork()
                self._cork = None
        return True

    def drain(self) -> None:
        """Stop keeping the connection alive, without closing it under a sending client.

        Closing an idle keep-alive connection races with the client's next
        request (it may be on the wire already, and the client cannot tell the
        close from a crash). So the next request is still answered, with
        ``Connection: close``, and closed after; a connection that stays idle
        closes at its ``http_keepalive_timeout`` as usual (or when the worker's
        ``graceful_timeout`` ends). A request in progress finishes the same way.
        """
        self._draining = True

    def _arm(self, delay: float) -> None:
        timer = self._timer = gevent.get_hub().loop.timer(delay)
        self._armed_until = _monotonic() + delay
        timer.start(self._deadline_check)

    def _disarm(self) -> None:
        self._deadline = None
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()

    def _deadline_check(self) -> None:
        """Timer (in the hub): the deadline may have moved since it was armed."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.close()
        deadline = self._deadline
        if deadline is None:
            return  # re-armed by the loop when a deadline is set again
        remaining = deadline - _monotonic()
        if remaining > 0:
            self._arm(remaining)
        elif self._in_recv and self._reader is not None:
            self._reader.throw(TimeoutError("timed out"))
        # else: not blocked in recv; the loop sees the deadline passed before its next read

    def _dispatch(self, messages: list[Any]) -> bool:
        """Answer one request; False ends the loop (upgrade, or a failed callback)."""
        request: Request = messages[0]
        counters.messages_in += 1
        if request.is_websocket_upgrade:
            return self._upgrade(request)
        self.request = request
        self._started = False
        self._response = None
        if self._access:
            self._started_at = _monotonic()
        handler = self._handler
        self._busy = True
        try:
            if handler is None:
                self.send(Response(b"no on_message callback\n", 404, content_type=TEXT))
            else:
                handler(self, request)
        except HTTPError as exc:
            if not self._started:
                self.send(exc.response())
            else:
                self.close()
        except Exception as exc:
            self._callback_failed("on_message", exc)
            return False
        finally:
            self._busy = False
        if not self._started and self._state is _OPEN:
            self.log.error("geworker: on_message returned without answering %s %s on "
                           "connection #%s; answering 500", request.method, request.target,
                           self.id)
            self._answer_500()
        if not self._stream_open:
            _release(request)
        return True

    def _upgrade(self, request: Request) -> bool:
        """The WebSocket seam: hand the socket to the WebSocket side."""
        # Imported here: an HTTP-only server never loads wsproto.
        from ..websocket.connection import upgrade_from_http

        self.request = request
        try:
            upgrade_from_http(self, request, self.protocol.take_trailing_data())
        except Exception as exc:
            self._callback_failed("websocket upgrade", exc)
        return False

    def _end_after_failure(self) -> None:
        """After a callback failed: answer 500 if nothing was sent yet, then close."""
        if not self._started and self._state is _OPEN and self.request is not None:
            self._answer_500()
        self.close()

    def _answer_500(self) -> None:
        self._started = True
        self._status = 500
        self._response = None
        self.send_raw(self.protocol.error(500))
        self._done()

    def _timed_out(self, phase: Any) -> None:
        if phase is HEAD or phase is BODY:
            what = "head" if phase is HEAD else "body"
            counters.errors["http_timeout"] += 1
            self.log.info("geworker: connection #%s from %s on %s sent no complete request "
                          "%s within http_%s_timeout; answering 408", self.id,
                          self.remote_address, self.listener.url, what, what)
            self._fail(encode_closing(error_response(408)))
        else:
            self._shutdown()

    def _reject(self, exc: RemoteProtocolError) -> None:
        counters.errors[type(exc).__name__] += 1
        self.log.warning("geworker: closing connection #%s from %s on %s: %s",
                         self.id, self.remote_address, self.listener.url, exc.reason)
        self._fail(exc.response)

    def _fail(self, response: bytes) -> None:
        """Send an error answer, then close without resetting the connection."""
        if response:
            self.send_raw(response)
        self._transition(ConnectionState.CLOSING)
        self._join_writer(self.listener.options.close_timeout)
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            return
        # Read and drop what the client still sends, so closing does not send
        # a reset that could destroy the answer before the client reads it.
        deadline = _monotonic() + LINGER_SECONDS
        dropped = 0
        while dropped < LINGER_BYTES:
            remaining = deadline - _monotonic()
            if remaining <= 0:
                break
            try:
                self.socket.settimeout(remaining)
                data = self.socket.recv(RECV_SIZE)
            except OSError:
                break
            if not data:
                break
            dropped += len(data)

    def _finish(self) -> None:
        if self.request is not None:
            _release(self.request)
        super()._finish()

    # -- access log -------------------------------------------------------------

    def _log_access(self) -> None:
        """One line through gunicorn's access logger (see :mod:`geworker.http.accesslog`)."""
        request = self.request
        if request is None:
            return
        response = self._response
        if response is not None:
            record = AccessRecord(self._status, response.reason, list(response.headers),
                                  self._sent)
        else:
            record = AccessRecord(self._status, None, [("Content-Type", self._ctype),
                                                       ("Content-Length", str(self._sent))],
                                  self._sent)
        log_access(self.log, self, request, record, _monotonic() - self._started_at)


def _release(request: Request) -> None:
    """Delete a request's temporary files (large body, uploads) once it is answered."""
    if not isinstance(request._body, bytes) or "files" in request.__dict__:
        request.close()

