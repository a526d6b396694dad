"""``websocket://``: RFC 6455 WebSocket, handshake parsed by h11, frames by wsproto (sans-IO).

:class:`WebSocketProtocol` serves one connection from its first byte: h11
parses the opening handshake request, which :meth:`~WebSocketProtocol.receive_data`
returns as a :class:`~geworker.websocket.handshake.WebSocketRequest` so the
application can look at it and decide. :meth:`~WebSocketProtocol.accept` then
writes the ``101`` answer and hands the frames to a ``wsproto`` connection;
:meth:`~WebSocketProtocol.reject` writes an HTTP error instead. An ``http://``
connection that asks to upgrade enters at :meth:`~WebSocketProtocol.start`
with its already parsed request.

What this class adds to wsproto, which answers nothing by itself and has no
limits:

* the bytes that followed the handshake request (h11's ``trailing_data``) are
  fed to wsproto, so a first frame sent in the same packet is not lost;
* fragmented messages are reassembled under ``max_message_size`` (close 1009);
  text arrives as ``str``, binary as ``bytes``;
* pings get pongs, and a peer's close is echoed with its code;
* invalid UTF-8 closes with 1007, protocol violations with 1002;
* permessage-deflate is negotiated when offered (and enabled), and inflating
  stops at ``max_decompressed_size``, so a small "zip bomb" frame never
  expands in memory (:mod:`~geworker.websocket.deflate`);
* nothing is ever sent through wsproto in a state that forbids it (wsproto
  raises ``LocalProtocolError`` there): every sending method returns ``b""``
  once the connection cannot carry what was asked;
* a fast path for the common case (:mod:`~geworker.websocket.frames`):
  complete, unfragmented, uncompressed text/binary frames that arrive while
  wsproto is between messages are decoded without it, and outgoing messages
  are framed without it. Until something needs wsproto (a control frame, a
  fragment, compression...) its connection is not even created, so an idle
  connection does not carry wsproto's objects.

The modules around it: :mod:`~geworker.websocket.handshake` (the opening
handshake checks and the request with its decision),
:mod:`~geworker.websocket.deflate`, :mod:`~geworker.websocket.frames`, and
:mod:`~geworker.websocket._wsproto`, the one place that touches wsproto's
private state. It imports no socket and no gevent;
:mod:`geworker.websocket.connection` runs it on a socket.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import h11
from wsproto.connection import Connection as WSConnection
from wsproto.connection import ConnectionState as WSState
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage

from ..errors import LocalProtocolError, RemoteProtocolError
from ..protocols.base import Protocol
from ..settings import MiB
from ._wsproto import WsprotoView, new_server
from .deflate import negotiate
from .frames import decode_simple, encode_message
from .handshake import (
    Accept,
    Reject,
    WebSocketRequest,
    accept_answer,
    check_handshake,
    refusal,
    reject_answer,
)

if TYPE_CHECKING:
    from wsproto.extensions import Extension, PerMessageDeflate

    from ..settings import Options

__all__ = ["Accept", "CloseCode", "Reject", "WebSocketPhase", "WebSocketProtocol",
           "WebSocketRequest"]


class CloseCode(enum.IntEnum):
    """The close codes geworker sends (RFC 6455, section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class WebSocketPhase(enum.Enum):
    """Lifecycle of a :class:`WebSocketProtocol`, in order, never backwards."""

    #: Reading the opening handshake request.
    HANDSHAKE = "HANDSHAKE"
    #: The request is complete; waiting for :meth:`WebSocketProtocol.accept` or ``reject``.
    CONNECTING = "CONNECTING"
    #: Frames flow (until both close frames were exchanged, or the connection failed).
    OPEN = "OPEN"
    #: Rejected, failed or closed: nothing more is sent or received.
    CLOSED = "CLOSED"


# Module-level names for the comparisons on the hot path.
_HANDSHAKE, _CONNECTING = WebSocketPhase.HANDSHAKE, WebSocketPhase.CONNECTING
_OPEN, _CLOSED = WebSocketPhase.OPEN, WebSocketPhase.CLOSED


class WebSocketProtocol(Protocol):
    """Server side of one WebSocket connection (sans-IO).

    Args:
        max_message_size: largest message in bytes, after reassembly and
            decompression; a bigger one closes the connection with 1009.
        compression: accept permessage-deflate when the client offers it.
        max_decompressed_size: largest inflated message (None: ``max_message_size``).
        fast_path: decode common frames and encode messages without wsproto
            (same results; False is for differential tests).

    Attributes:
        phase: a :class:`WebSocketPhase`.
        request: the :class:`WebSocketRequest` once the handshake request is read.
        subprotocol: the subprotocol chosen at :meth:`accept`.
        close_code / close_reason: the code and reason of the close: the
            peer's, or the one sent when the connection failed (None while open).
        error: why geworker failed the connection (for the log), else None.
        fast_frames: frames decoded by the fast path (for tests).
        closed: True once the connection must be closed after
            :meth:`data_to_send` is flushed (close frames exchanged, failure,
            rejection).
    """

    __slots__ = ("_deflate", "_failure", "_h11", "_hold_failure", "_out", "_parts", "_pending",
                 "_size", "_view", "_ws", "close_code", "close_reason", "compression", "error",
                 "fast_frames", "fast_path", "max_decompressed_size", "max_message_size", "phase",
                 "request", "subprotocol")

    def __init__(self, max_message_size: int = 1 * MiB, compression: bool = True,
                 max_decompressed_size: int | None = None, fast_path: bool = True) -> None:
        super().__init__(max_message_size)
        self.max_message_size = max_message_size
        self.compression = compression
        self.max_decompressed_size = min(max_decompressed_size or max_message_size,
                                         max_message_size)
        self.phase = _HANDSHAKE
        self.request: WebSocketRequest | None = None
        self.subprotocol: str | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.error: str | None = None
        self._h11: h11.Connection | None = h11.Connection(h11.SERVER)
        self._ws: WSConnection | None = None
        self._pending = b""  # received before the application accepted
        self._out: list[bytes] = []
        self._parts: list[Any] = []
        self._size = 0
        self._failure: tuple[int, str] | None = None
        self._hold_failure = False
        self.fast_path = fast_path
        self.fast_frames = 0
        self._deflate: PerMessageDeflate | None = None  # permessage-deflate, when negotiated
        # What the fast path sees of wsproto (is it between messages?), once started.
        self._view: WsprotoView | None = None

    @classmethod
    def for_listener(cls, options: Options) -> WebSocketProtocol:
        """A protocol with the listener's ``websocket_*`` limits."""
        return cls(options.websocket_max_message_size, options.websocket_compression,
                   options.websocket_max_decompressed_size)

    # -- opening handshake -------------------------------------------------

    def start(self, event: h11.Request, trailing: bytes = b"",
              remote_address: Any = None) -> WebSocketRequest:
        """Begin from an already parsed upgrade request (an ``http://`` upgrade).

        ``trailing`` holds the bytes received after the request head; they
        are fed to wsproto once the handshake is accepted.

        Raises:
            RemoteProtocolError: the request is not a valid WebSocket
                handshake; its ``response`` is the HTTP answer to send.
        """
        self._h11 = None
        check_handshake(event)
        self.request = WebSocketRequest(event, remote_address)
        self._pending = trailing
        self.phase = _CONNECTING
        return self.request

    def _read_handshake(self, data: bytes) -> list[Any]:
        conn = self._h11
        assert conn is not None
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise refusal(exc.error_status_hint, str(exc)) from None
            if event is h11.NEED_DATA:
                return []
            if isinstance(event, h11.Request):
                check_handshake(event)
                self.request = WebSocketRequest(event)
            elif event is h11.PAUSED:
                # h11 stops after an upgrade request: what follows is ours to feed.
                self._pending = conn.trailing_data[0]
                self._h11 = None
                self.phase = _CONNECTING
                assert self.request is not None
                return [self.request]
            elif isinstance(event, h11.ConnectionClosed):  # pragma: no cover
                return []

    def accept(self, subprotocol: str | None = None,
               headers: Iterable[tuple[bytes, bytes]] = ()) -> list[Any]:
        """Answer ``101 Switching Protocols``; returns the messages already received.

        ``headers`` are validated ``(name, value)`` byte pairs (see
        :meth:`WebSocketRequest.accept`). The answer is in :meth:`data_to_send`.
        """
        request = self.request
        if self.phase is not _CONNECTING or request is None:
            raise LocalProtocolError(f"cannot accept a WebSocket in phase {self.phase.value}")
        extensions: list[Extension] = []
        answer = None
        if self.compression and request.extensions:
            negotiated = negotiate(request.extensions, self.max_decompressed_size)
            if negotiated is not None:
                answer, deflate = negotiated
                extensions.append(deflate)
        self._out.append(accept_answer(request.key, subprotocol, answer, headers))
        self.subprotocol = subprotocol
        self.phase = _OPEN
        if extensions or not self.fast_path:
            self._start_wsproto(extensions)
        # else wsproto starts on first need: until then the fast path does all
        # the work, and an idle connection does not carry wsproto's objects.
        pending, self._pending = self._pending, b""
        return self._receive_frames(pending) if pending else []

    def _start_wsproto(self, extensions: list[Extension] | None = None) -> WSConnection:
        """wsproto's connection, fresh: the state it would have after the fast path's frames."""
        ws = self._ws = new_server(extensions)
        if self.fast_path:
            self._deflate = extensions[0] if extensions else None  # type: ignore[assignment]
            self._view = WsprotoView(ws)
        return ws

    def _wsproto(self) -> WSConnection | None:
        """wsproto's connection once accepted (started now if need be), else None."""
        if self._ws is None and self.phase is _OPEN:
            return self._start_wsproto()
        return self._ws

    def reject(self, status: int = 403, headers: Iterable[tuple[bytes, bytes]] = (),
               body: bytes | None = None) -> None:
        """Refuse the handshake with an HTTP answer; the connection closes after it.

        ``body`` None (or empty) is the standard text of ``status``.
        """
        if self.phase is not _CONNECTING:
            raise LocalProtocolError(f"cannot reject a WebSocket in phase {self.phase.value}")
        self._out.append(reject_answer(status, headers, body or None))
        self.phase = _CLOSED
        self.closed = True

    def decide(self, decision: Accept | Reject | None) -> list[Any]:
        """Act on a :class:`WebSocketRequest`'s decision (None: accept, no subprotocol).

        Returns the messages already received when accepted, else ``[]``.
        """
        if isinstance(decision, Reject):
            self.reject(decision.status, decision.headers, decision.body)
            return []
        if decision is None:
            return self.accept()
        return self.accept(decision.subprotocol, decision.headers)

    # -- frames ------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[Any]:
        """Feed bytes; returns complete messages (``str`` or ``bytes``).

        While the handshake request is being read, returns ``[request]``
        once it is complete (a :class:`WebSocketRequest`).

        Raises:
            RemoteProtocolError: the handshake request is malformed or not
                a WebSocket handshake (the error carries the HTTP answer).
        """
        phase = self.phase
        if phase is _OPEN:
            return self._receive_frames(data)
        if phase is _HANDSHAKE:
            return self._read_handshake(data)
        if phase is _CONNECTING:
            self._pending += data
            if len(self._pending) > self.max_message_size + 64 * 1024:
                raise RemoteProtocolError("too much data before the handshake was accepted")
        return []

    def _receive_frames(self, data: bytes) -> list[Any]:
        messages: list[Any] = []
        ws = self._ws
        if ws is None:
            fast = True  # not started yet: nothing in progress, nothing closed
        else:
            state = ws.state
            if state is WSState.CLOSED:
                return []
            view = self._view
            # The fast path only where wsproto holds no byte, frame or message in
            # progress, and no close has begun: there it has no state to keep.
            fast = (view is not None and state is WSState.OPEN and self.close_code is None
                    and not self._parts and view.between_messages())
        if fast:
            # Where wsproto would have produced exactly these messages from these
            # bytes, with no state left behind (see the differential tests).
            used = decode_simple(data, self.max_message_size, messages)
            self.fast_frames += len(messages)
            if used == len(data):
                return messages
            if used:
                data = data[used:]
            if ws is None:
                ws = self._start_wsproto()
        assert ws is not None
        ws.receive_data(data)
        parts = self._parts
        for event in ws.events():
            kind = type(event)
            if kind is TextMessage or kind is BytesMessage:
                payload = event.data  # type: ignore[attr-defined]
                if self.close_code is not None:
                    continue  # after our close frame: discarded, as RFC 6455 allows
                size = len(payload) if kind is BytesMessage or payload.isascii() \
                    else len(payload.encode())
                if event.message_finished and not parts:  # type: ignore[attr-defined]
                    if size > self.max_message_size:
                        self._fail(CloseCode.MESSAGE_TOO_BIG, self._too_big(size), messages)
                        break
                    messages.append(payload)
                    continue
                self._size += size
                if self._size > self.max_message_size:
                    self._fail(CloseCode.MESSAGE_TOO_BIG, self._too_big(self._size), messages)
                    break
                parts.append(payload)
                if event.message_finished:  # type: ignore[attr-defined]
                    messages.append("".join(parts) if kind is TextMessage else b"".join(parts))
                    parts.clear()
                    self._size = 0
            elif kind is Ping:
                if ws.state is WSState.OPEN:
                    self._out.append(ws.send(event.response()))  # type: ignore[attr-defined]
            elif kind is CloseConnection:
                self._on_close_frame(ws, event, messages)  # type: ignore[arg-type]
                break
        return messages

    def _on_close_frame(self, ws: WSConnection, event: CloseConnection,
                        messages: list[Any]) -> None:
        state = ws.state
        if state is WSState.REMOTE_CLOSING:  # the peer closes: echo its code
            self.close_code, self.close_reason = event.code, event.reason or ""
            self._out.append(ws.send(event.response()))
        elif state is WSState.OPEN:  # wsproto reports a protocol violation this way
            self._fail(event.code, event.reason or "protocol error", messages)
            return
        elif self.close_code is None:  # pragma: no cover
            self.close_code = event.code
        self.phase = _CLOSED
        self.closed = True

    def _too_big(self, size: int) -> str:
        return f"message of {size}+ bytes exceeds max_message_size={self.max_message_size}"

    def _fail(self, code: int, reason: str, messages: list[Any]) -> None:
        """Fail the connection: a close frame with ``code``, then nothing more.

        When complete messages came before the fault in the same data, the
        close frame waits for the next :meth:`data_to_send` call, so the
        answers to those messages can be encoded and sent before it.
        """
        self.error = f"{int(code)} {reason}"
        self.close_code, self.close_reason = int(code), reason
        self._parts.clear()
        self.closed = True
        self._failure = (int(code), reason[:120])
        self._hold_failure = bool(messages)
        if not messages:
            self._send_failure()

    def _send_failure(self) -> None:
        ws, failure = self._ws, self._failure
        self._failure = None
        if failure is not None and ws is not None and ws.state in (WSState.OPEN,
                                                                    WSState.REMOTE_CLOSING):
            self._out.append(ws.send(CloseConnection(code=failure[0], reason=failure[1])))
        self.phase = _CLOSED

    def encode(self, message: Any) -> bytes:
        """One message as a frame: ``str`` as text, bytes-like as binary.

        Returns ``b""`` when the connection is not open (not yet accepted, or
        a close frame was sent or received).

        Raises:
            LocalProtocolError: for any other type.
        """
        ws = self._ws
        if self.fast_path and (self.phase is _OPEN if ws is None else ws.state is WSState.OPEN):
            # (deflate starts wsproto at once: ws is set whenever deflate is)
            data = encode_message(message, self._deflate, ws)
            if data is not None:
                return data
        if isinstance(message, str):
            event: Any = TextMessage(data=message)
        elif isinstance(message, (bytes, bytearray, memoryview)):
            event = BytesMessage(data=message)  # type: ignore[arg-type]
        else:
            raise LocalProtocolError(
                f"cannot send a {type(message).__name__} over WebSocket: "
                "send str (text frame) or bytes (binary frame)")
        if ws is None or ws.state is not WSState.OPEN:
            return b""
        return ws.send(event)

    def ping(self, payload: bytes = b"") -> bytes:
        """A ping frame (``b""`` when the connection is not open)."""
        ws = self._wsproto()
        if ws is None or ws.state is not WSState.OPEN:
            return b""
        return ws.send(Ping(payload=payload))

    def close(self, code: int = CloseCode.NORMAL, reason: str = "") -> bytes:
        """Start (or answer) the close handshake: a close frame, or ``b""`` if one was sent."""
        ws = self._wsproto()
        if ws is None or ws.state not in (WSState.OPEN, WSState.REMOTE_CLOSING):
            return b""
        if self.close_code is None:
            self.close_code, self.close_reason = int(code), reason
        data = ws.send(CloseConnection(code=int(code), reason=reason or None))
        if ws.state is WSState.CLOSED:  # type: ignore[comparison-overlap]  # send() changed it
            self.phase = _CLOSED
            self.closed = True
        return data

    def going_away(self) -> bytes:
        """A ``1001 going away`` close frame (worker stop or reload)."""
        return self.close(CloseCode.GOING_AWAY, "going away")

    @property
    def is_open(self) -> bool:
        """True while messages can be sent (accepted, no close frame sent or received)."""
        ws = self._ws
        return self.phase is _OPEN if ws is None else ws.state is WSState.OPEN

    @property
    def close_sent(self) -> bool:
        """True once a close frame was sent (the close handshake is under way or done)."""
        ws = self._ws
        return ws is not None and ws.state in (WSState.LOCAL_CLOSING, WSState.CLOSED)

    def data_to_send(self) -> bytes:
        """Handshake answers, pongs, close frames produced while receiving.

        Call it again after dispatching the messages of a batch that failed
        the connection: the failing close frame comes then (see ``closed``).
        """
        if self._failure is not None:
            if self._hold_failure:
                self._hold_failure = False  # first the answers to the messages before it
            else:
                self._send_failure()
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    @property
    def has_partial_message(self) -> bool:
        """True while part of a fragmented (or still arriving) message is buffered."""
        return bool(self._parts)

