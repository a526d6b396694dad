"""WebSocket connections: the transport loop of ``websocket://`` listeners and upgraded ``http://``.

:class:`WebSocketConnection` runs a :class:`~geworker.websocket.protocol.WebSocketProtocol`
on a socket, in the connection's greenlet:

1. ``on_connect(conn)`` (``websocket://`` only: an upgraded HTTP connection
   already had it), then the opening handshake is read, within
   ``websocket_handshake_timeout``;
2. ``on_websocket_connect(conn, request)`` decides: ``request.accept(...)``,
   ``request.reject(status)`` or ``raise HTTPError(status)``; no decision
   accepts. Messages sent before the handshake completes are held and sent
   right after the ``101`` answer;
3. ``on_message(conn, message)`` gets ``str`` (text) or ``bytes`` (binary);
   ``conn.send`` picks the frame type from the type;
4. the close handshake: a close started here (``conn.close()``, drain,
   keepalive) waits up to ``close_timeout`` for the peer's close frame, then
   the socket is closed and ``on_close(conn)`` runs, exactly once.

Every write of a connection (pongs, close frames, keepalive pings, sends from
any greenlet) is encoded and handed to :meth:`Connection.send_raw` in one
step, without yielding, so frames reach the socket in wsproto's order.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import gevent

from ..errors import RemoteProtocolError
from ..http.protocol import encode_closing
from ..http.responses import HTTPError, error_response
from ..stats import counters
from ..transport.connection import RECV_SIZE, Connection
from .handshake import Reject, WebSocketRequest
from .protocol import CloseCode, WebSocketPhase, WebSocketProtocol

if TYPE_CHECKING:
    import socket

    from ..http.models import Request
    from ..listener import Listener
    from ..server import Server

__all__ = ["WebSocketConnection", "upgrade_from_http"]


class WebSocketConnection(Connection):
    """One WebSocket connection (see the module docstring for its lifecycle).

    Attributes:
        request: the :class:`~geworker.websocket.protocol.WebSocketRequest`
            of the opening handshake (path, query, headers, cookies...).
        upgraded: True when it began as an ``http://`` request.
    """

    __slots__ = ("_early", "_handler", "_keepalive", "_ping_mark", "_ws_close_timer",
                 "request", "upgraded")

    protocol: WebSocketProtocol

    def __init__(self, sock: socket.socket, remote_address: Any, listener: Listener,
                 server: Server, log: Any = None, upgraded: bool = False) -> None:
        super().__init__(sock, remote_address, listener, server, log)
        if upgraded:
            self.protocol = WebSocketProtocol.for_listener(listener.options)
        self.upgraded = upgraded
        self.request: WebSocketRequest | None = None
        self._handler = self._message_handler()
        self._early: list[Any] = []
        self._keepalive: Any = None
        self._ping_mark = -1
        self._ws_close_timer: Any = None

    def _message_handler(self) -> Any:
        """The callback messages go to: ``on_websocket_message`` first if upgraded."""
        callbacks = self._callbacks
        first, second = (("on_websocket_message", "on_message") if self.upgraded
                         else ("on_message", "on_websocket_message"))
        return callbacks.get(first) or callbacks.get(second)

    def _use_callbacks(self, callbacks: dict[str, Any]) -> None:
        super()._use_callbacks(callbacks)
        self._handler = self._message_handler()

    # -- public API -------------------------------------------------------

    @property
    def subprotocol(self) -> str | None:
        """The subprotocol chosen in ``on_websocket_connect`` (None: none)."""
        return self.protocol.subprotocol

    @property
    def close_code(self) -> int | None:
        """The close code: the peer's, or the one geworker closed with (None while open)."""
        return self.protocol.close_code

    @property
    def close_reason(self) -> str:
        """The reason that came with :attr:`close_code`."""
        return self.protocol.close_reason

    def send(self, message: Any) -> bool:
        """Send ``str`` as a text frame, bytes-like as a binary frame.

        Safe from any greenlet; never blocks. Before the handshake completes
        the message is held and sent right after it (dropped if it is
        rejected). Returns False once a close frame was sent or received, or
        when the send queue is full.

        Raises:
            LocalProtocolError: for a message that is neither str nor bytes-like.
        """
        if not self._state.is_open:
            return False
        protocol = self.protocol
        data = protocol.encode(message)
        if data:
            return self.send_raw(data)
        if protocol.phase in (WebSocketPhase.HANDSHAKE, WebSocketPhase.CONNECTING):
            self._early.append(message)
            return True
        return False

    def ping(self, payload: bytes = b"") -> bool:
        """Send a ping frame; False when the connection is not open."""
        data = self.protocol.ping(payload) if self._state.is_open else b""
        return self.send_raw(data) if data else False

    def close(self, message: Any = None, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send ``message`` (if given), then start the close handshake with ``code``.

        The socket is closed when the peer answers with its close frame, or
        after ``close_timeout`` seconds; then ``on_close`` runs.
        """
        if not self._state.is_open:
            return
        if message is not None:
            self.send(message)
        protocol = self.protocol
        bye = protocol.close(code, reason)
        if bye:
            self.send_raw(bye)
        if protocol.closed or not protocol.close_sent:
            Connection.close(self)  # nothing to wait for: flush and shut
        elif self._ws_close_timer is None:
            timer = self._ws_close_timer = gevent.get_hub().loop.timer(
                self.listener.options.close_timeout)
            timer.start(gevent.spawn, self._abort)

    # -- the transport loop ----------------------------------------------

    def _start(self) -> bool:
        """``on_connect``, the opening handshake and ``on_websocket_connect``, then keepalive."""
        request = self.protocol.request
        if request is None:
            if not super()._start():
                return False
            request = self._read_handshake()
            if request is None:
                return False
        self.request = request
        messages = self._handshake(request)
        if messages is None:
            return False
        self._start_keepalive()
        if messages:
            self._dispatch(messages)
        self._after_batch()
        if self._draining or self._runtime.draining:
            self.drain()
        return True

    def _idle_timed_out(self) -> bool:
        """Close with 1001 after ``idle_timeout``, and keep reading for the peer's close."""
        if self._state.is_open and not self.protocol.close_sent:
            self._log_close("closed after idle_timeout", "idle_timeout")
            self.close(code=CloseCode.GOING_AWAY, reason="idle timeout")
        return True

    def _batch_done(self) -> None:
        if self.protocol.closed:
            self._after_batch()
        elif self._draining and not self.protocol.has_partial_message:
            self._go_away()

    def _after_batch(self) -> None:
        """Once the protocol is done (close handshake over, or failed): flush and shut."""
        protocol = self.protocol
        if not protocol.closed or not self._state.is_open:
            return
        bye = protocol.data_to_send()  # a failure's close frame follows the answers
        if bye:
            self.send_raw(bye)
        if protocol.error is not None:
            self._log_close(f"failed: {protocol.error}", "websocket_error")
        Connection.close(self)

    def _read_handshake(self) -> WebSocketRequest | None:
        """Read until the opening handshake request is complete (None: closed or refused)."""
        protocol = self.protocol
        timeout = self.listener.options.websocket_handshake_timeout
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._log_close(f"closed: no WebSocket handshake within {timeout}s",
                                "handshake_timeout")
                return None
            self.socket.settimeout(remaining)
            try:
                data = self.socket.recv(RECV_SIZE)
            except TimeoutError:
                continue
            except OSError:
                return None
            if not data:
                return None
            self.bytes_read += len(data)
            counters.bytes_in += len(data)
            try:
                messages = protocol.receive_data(data)
            except RemoteProtocolError as exc:
                self._reject(exc)
                return None
            if messages:
                request: WebSocketRequest = messages[0]
                request.remote_address = self.remote_address
                return request

    def _handshake(self, request: WebSocketRequest) -> list[Any] | None:
        """Let ``on_websocket_connect`` decide, then answer; None when refused."""
        connect = self._callbacks.get("on_websocket_connect")
        failure = None
        origins = self.listener.options.websocket_origins
        origin = request.headers.get("origin") if origins is not None else None
        if origin is not None and origins is not None and origin.lower() not in origins:
            counters.errors["origin_refused"] += 1
            request.reject(403, "origin not allowed")
        elif connect is not None:
            self._busy = True
            try:
                connect(self, request)
            except HTTPError as exc:
                request.reject(exc.status, exc.detail,
                               [(k, v) for k, v in exc.headers])
            except Exception as exc:
                failure = exc
                request.reject(500)
            finally:
                self._busy = False
        if not self._state.is_open:
            return None  # the callback closed the connection
        protocol = self.protocol
        decision = request.decision
        messages = protocol.decide(decision)
        self.send_raw(protocol.data_to_send())
        if isinstance(decision, Reject):
            self._early.clear()
            if failure is not None:
                self._callback_failed("on_websocket_connect", failure)  # logs, closes
            else:
                self.log.info("geworker: WebSocket handshake on %s from %s refused with %s",
                              self.listener.url, self.remote_address, decision.status)
                Connection.close(self)
            return None
        early, self._early = self._early, []
        for message in early:
            self.send(message)
        return messages

    def _dispatch(self, messages: list[Any]) -> bool:
        """Call the message callback for each message, in order."""
        counters.messages_in += len(messages)
        handler = self._handler
        if handler is None:
            return True
        self._busy = True
        try:
            for message in messages:
                handler(self, message)
                if not self._state.is_open:
                    break
        except Exception as exc:
            self._callback_failed("on_message", exc)  # 1011, then waits for the peer's close
        finally:
            self._busy = False
        return True

    # -- keepalive and closing ------------------------------------------

    def _start_keepalive(self) -> None:
        interval = self.listener.options.websocket_ping_interval
        if interval and self._state.is_open:
            self._arm(interval, self._ping_due)

    def _arm(self, seconds: float, callback: Any) -> None:
        if self._keepalive is not None:
            self._keepalive.close()
        self._keepalive = gevent.get_hub().loop.timer(seconds)
        # In a greenlet, not the hub: a send may run on_buffer_full.
        self._keepalive.start(gevent.spawn, callback)

    def _ping_due(self) -> None:
        """Timer: ping, then expect any data within ``websocket_ping_timeout``."""
        if not self._state.is_open or not self.protocol.is_open:
            return
        self.ping(b"geworker")  # a full send queue drops it: the deadline still holds
        self._ping_mark = self.bytes_read
        self._arm(self.listener.options.websocket_ping_timeout, self._pong_due)

    def _pong_due(self) -> None:
        """Timer: the peer sent nothing since the ping (a busy callback excuses it)."""
        options = self.listener.options
        if not self._state.is_open:
            return
        if self.bytes_read > self._ping_mark or self._busy:
            self._arm(options.websocket_ping_interval or 1.0, self._ping_due)
            return
        self._log_close(f"closed: no answer to a ping within {options.websocket_ping_timeout}s",
                        "ping_timeout")
        bye = self.protocol.close(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        if bye:
            self.send_raw(bye)
        Connection.close(self)
        self._shutdown()  # the peer is gone: do not wait for its close frame

    def _abort(self) -> None:
        """Timer: the peer did not answer our close frame within ``close_timeout``."""
        Connection.close(self)
        self._shutdown()

    def _end_after_failure(self) -> None:
        """After a callback failed: close with 1011 (internal error)."""
        bye = self.protocol.close(CloseCode.INTERNAL_ERROR, "internal error")
        if bye:
            self.send_raw(bye)
        self.close()

    def _go_away(self) -> None:
        if self._state.is_open:
            self.close(code=CloseCode.GOING_AWAY, reason="going away")

    def _heartbeat_ping(self) -> None:
        """A ping frame at each heartbeat tick, or ``heartbeat_data`` as a message."""
        if self.listener.options.heartbeat_data is not None:
            super()._heartbeat_ping()
        elif self.protocol.is_open:
            self.send_raw(self.protocol.ping(b"geworker"))

    def _close_now(self, why: str) -> None:
        """A close frame (1008 for a slow consumer or a stalled message, 1011 for a
        missed heartbeat), without waiting for the peer's."""
        code, reason = {"slow_consumer": (CloseCode.POLICY_VIOLATION, "slow consumer"),
                        "message_timeout": (CloseCode.POLICY_VIOLATION, "message timeout"),
                        }.get(why, (CloseCode.INTERNAL_ERROR, "heartbeat timeout"))
        bye = self.protocol.close(code, reason)  # (close_code tells on_close why)
        if bye and why != "slow_consumer":  # a full queue would only drop it
            self.send_raw(bye)
        Connection.close(self)
        self._shutdown()

    def _finish(self) -> None:
        for timer in (self._keepalive, self._ws_close_timer):
            if timer is not None:
                timer.close()
        self._keepalive = self._ws_close_timer = None
        super()._finish()

    def __repr__(self) -> str:
        return (f"<geworker.WebSocketConnection #{self.id} {self.listener.url} "
                f"from {self.remote_address} {self._state.value}>")


def upgrade_from_http(http_conn: Connection, request: Request, trailing: bytes) -> None:
    """Serve an ``http://`` request asking for ``Upgrade: websocket`` as a WebSocket.

    Called by the HTTP connection in its own greenlet; returns when the
    WebSocket connection has ended. When the server defines neither
    ``on_websocket_connect`` nor ``on_websocket_message`` the request is
    answered 400 and the connection closed. Otherwise the socket is handed
    to a :class:`WebSocketConnection`, which owns ``on_close`` from then on.

    Args:
        http_conn: the HTTP connection the request arrived on.
        request: the parsed request (its ``h11_request`` is used).
        trailing: bytes received after the request head (frames already sent).
    """
    callbacks = http_conn.server.callbacks
    if "on_websocket_connect" not in callbacks and "on_websocket_message" not in callbacks:
        http_conn.send_raw(encode_closing(error_response(400, "no WebSocket endpoint here")))
        http_conn.log.info("geworker: WebSocket upgrade on %s from %s refused: the server "
                           "defines no WebSocket callback", http_conn.listener.url,
                           http_conn.remote_address)
        http_conn.close()
        return
    ws = WebSocketConnection(http_conn.socket, http_conn.remote_address, http_conn.listener,
                             http_conn.server, http_conn.log, upgraded=True)
    try:
        ws.protocol.start(request.h11_request, trailing, http_conn.remote_address)
    except RemoteProtocolError as exc:
        http_conn.send_raw(exc.response)
        http_conn.log.info("geworker: closing connection #%s from %s on %s: %s", http_conn.id,
                           http_conn.remote_address, http_conn.listener.url, exc.reason)
        http_conn.close()
        return
    # Earlier answers of this connection may still be queued: they go first.
    http_conn._join_writer(http_conn.listener.options.close_timeout)
    http_conn.hand_off()
    ws.context = http_conn.context
    ws.created = http_conn.created
    ws.bytes_read, ws.bytes_written = http_conn.bytes_read, http_conn.bytes_written
    ws.serve()
