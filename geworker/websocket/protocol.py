"""``websocket://``: RFC 6455 WebSocket, handshake parsed by h11, frames by wsproto (sans-IO).

:class:`WebSocketProtocol` serves one connection from its first byte: h11
parses the opening handshake request, which :meth:`~WebSocketProtocol.receive_data`
returns as a :class:`WebSocketRequest` so the application can look at it and
decide. :meth:`~WebSocketProtocol.accept` then writes the ``101`` answer and
hands the frames to a ``wsproto`` connection; :meth:`~WebSocketProtocol.reject`
writes an HTTP error instead. An ``http://`` connection that asks to upgrade
enters at :meth:`~WebSocketProtocol.start` with its already parsed request.

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
  expands in memory;
* nothing is ever sent through wsproto in a state that forbids it (wsproto
  raises ``LocalProtocolError`` there): every sending method returns ``b""``
  once the connection cannot carry what was asked;
* a fast path for the common case: complete, unfragmented, uncompressed
  text/binary frames that arrive while wsproto is between messages are
  decoded here, and outgoing messages are framed here (compressed by
  wsproto's permessage-deflate code when negotiated). Anything else
  (control frames, fragments, RSV bits, partial or oversized frames,
  invalid UTF-8, any doubt) goes to wsproto, which defines the behaviour;
  differential tests hold both paths to the same output.

It imports no socket and no gevent; :mod:`geworker.websocket.connection`
runs it on a socket.
"""

from __future__ import annotations

import base64
import binascii
import enum
import struct
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import h11
from wsproto.connection import Connection as WSConnection
from wsproto.connection import ConnectionState as WSState
from wsproto.connection import ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits
from wsproto.utilities import generate_accept_token

from ..errors import LocalProtocolError, RemoteProtocolError
from ..http.models import Request
from ..http.responses import check_header, reason_phrase
from ..protocols.base import Protocol
from ..settings import MiB

if TYPE_CHECKING:
    from wsproto.frame_protocol import FrameDecoder, FrameProtocol

    from ..settings import Options

__all__ = ["CloseCode", "Phase", "WebSocketProtocol", "WebSocketRequest"]


class CloseCode(enum.IntEnum):
    """The close codes geworker sends (RFC 6455, section 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011


class Phase(enum.Enum):
    """Lifecycle of a :class:`WebSocketProtocol`, in order, never backwards."""

    #: Reading the opening handshake request.
    HANDSHAKE = "HANDSHAKE"
    #: The request is complete; waiting for :meth:`WebSocketProtocol.accept` or ``reject``.
    CONNECTING = "CONNECTING"
    #: Frames flow (until both close frames were exchanged, or the connection failed).
    OPEN = "OPEN"
    #: Rejected, failed or closed: nothing more is sent or received.
    CLOSED = "CLOSED"


HANDSHAKE, CONNECTING, OPEN, CLOSED = Phase.HANDSHAKE, Phase.CONNECTING, Phase.OPEN, Phase.CLOSED

_DEFLATE_FLAGS = ("server_no_context_takeover", "client_no_context_takeover")
_DEFLATE_BITS = ("server_max_window_bits", "client_max_window_bits")
_SYNC_TAIL = b"\x00\x00\xff\xff"
_PACK_16 = struct.Struct("!BBH").pack
_PACK_64 = struct.Struct("!BBQ").pack
_NO_RSV = RsvBits(False, False, False)


def _http_response(status: int, headers: Iterable[tuple[bytes, bytes]], body: bytes = b"") -> bytes:
    """A complete ``HTTP/1.1`` answer that closes the connection."""
    head = [f"HTTP/1.1 {status} {reason_phrase(status)}\r\n".encode()]
    if status >= 200:
        head.append(b"Connection: close\r\nContent-Length: %d\r\n" % len(body))
    head.extend(b"%s: %s\r\n" % pair for pair in headers)
    head.append(b"\r\n")
    return b"".join(head) + body


def _error(status: int, reason: str,
           headers: Iterable[tuple[bytes, bytes]] = ()) -> RemoteProtocolError:
    """A refused handshake: the peer gets ``status`` with ``reason`` as a text body."""
    body = f"{status} {reason_phrase(status)}: {reason}\n".encode()
    headers = [(b"Content-Type", b"text/plain; charset=utf-8"), *headers]
    return RemoteProtocolError(f"WebSocket handshake refused ({status}): {reason}",
                               _http_response(status, headers, body))


HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]]


def _header_pairs(headers: HeadersArg) -> list[tuple[bytes, bytes]]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [check_header(name, value) for name, value in items]


class WebSocketRequest(Request):
    """The opening handshake, as ``on_websocket_connect(conn, request)`` sees it.

    Everything a :class:`geworker.http.Request` offers (``path``, ``query``,
    ``headers``, ``cookies``, ``remote_address``...) plus the offered
    :attr:`subprotocols`. The callback decides with :meth:`accept` or
    :meth:`reject` (or by raising :class:`geworker.http.HTTPError`); a
    callback that decides nothing accepts with no subprotocol.

    Attributes:
        subprotocols: the ``Sec-WebSocket-Protocol`` values offered, in order.
        extensions: the raw ``Sec-WebSocket-Extensions`` offers.
    """

    def __init__(self, event: h11.Request, remote_address: Any = None) -> None:
        super().__init__(event, b"", remote_address, True, True)
        self.subprotocols: list[str] = []
        self.extensions: list[str] = []
        self.key = b""
        for name, value in event.headers:
            if name == b"sec-websocket-protocol":
                self.subprotocols += _split(value)
            elif name == b"sec-websocket-extensions":
                self.extensions += _split(value)
            elif name == b"sec-websocket-key":
                self.key = value.strip()
        #: ``("accept", subprotocol, headers)`` or ``("reject", status, headers, body)``.
        self.decision: tuple[Any, ...] | None = None

    def accept(self, subprotocol: str | None = None, headers: HeadersArg = ()) -> None:
        """Complete the handshake, optionally choosing a subprotocol and adding headers.

        Raises:
            LocalProtocolError: ``subprotocol`` was not offered by the client,
                or a header name/value is invalid (CR, LF, NUL).
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise LocalProtocolError(
                f"subprotocol {subprotocol!r} was not offered (offered: {self.subprotocols})")
        self.decision = ("accept", subprotocol, _header_pairs(headers))

    def reject(self, status: int = 403, body: str | bytes = "", headers: HeadersArg = ()) -> None:
        """Refuse the handshake with an HTTP ``status`` (300-599), a body and headers.

        The body defaults to the reason phrase. The connection is closed
        after the answer.

        Raises:
            LocalProtocolError: for a status outside 300-599 or an invalid header.
        """
        if not 300 <= status <= 599:
            raise LocalProtocolError(f"a WebSocket rejection needs a 3xx-5xx status, not {status}")
        data = body.encode() if isinstance(body, str) else bytes(body)
        self.decision = ("reject", status, _header_pairs(headers),
                         data or f"{status} {reason_phrase(status)}\n".encode())

    def __repr__(self) -> str:
        return f"<geworker.WebSocketRequest {self.target} subprotocols={self.subprotocols}>"


def _split(value: bytes) -> list[str]:
    return [part.strip() for part in value.decode("latin-1").split(",") if part.strip()]


def _deflate_offer(offer: str) -> str | None:
    """One permessage-deflate offer in wsproto's syntax, or None to decline it.

    RFC 7692 section 5: an offer with an unknown or repeated parameter, or a
    bad value, is declined. ``server_max_window_bits=8`` is declined too:
    zlib cannot compress raw deflate with a 256-byte window.
    """
    name, *params = (part.strip() for part in offer.split(";"))
    if name.lower() != "permessage-deflate":
        return None
    seen = set()
    out = ["permessage-deflate"]
    for param in params:
        key, eq, value = param.partition("=")
        key, value = key.strip().lower(), value.strip().strip('"')
        if key in seen:
            return None
        seen.add(key)
        if key in _DEFLATE_FLAGS:
            if eq:
                return None
            out.append(key)
        elif key in _DEFLATE_BITS:
            if not eq and key == "client_max_window_bits":
                out.append(key)
                continue
            if not value.isdigit() or not 9 <= int(value) <= 15:
                if key == "client_max_window_bits" and value == "8":
                    value = "9"  # a 512-byte window inflates what a 256-byte one deflated
                else:
                    return None
            out.append(f"{key}={int(value)}")
        else:
            return None
    return "; ".join(out)


class _BoundedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate, inflating at most ``max_size`` bytes per message.

    wsproto inflates each received chunk whole; here ``decompress`` gets a
    ``max_length``, so a highly compressed frame stops at the cap (close
    1009) instead of expanding in memory. A control frame between the
    fragments of a compressed message no longer resets the message's
    compressed flag. Uses wsproto's ``_decompressor``/``_inbound_*`` state.
    """

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size
        self._inflated = 0

    def frame_inbound_header(self, proto: FrameDecoder | FrameProtocol, opcode: Opcode,
                             rsv: RsvBits, payload_length: int) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            if rsv.rsv1:
                return CloseReason.PROTOCOL_ERROR
            self._inbound_is_compressible = False
            return RsvBits(True, False, False)
        return super().frame_inbound_header(proto, opcode, rsv, payload_length)

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        budget = self.max_size - self._inflated
        try:
            out = self._decompressor.decompress(data, budget + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.max_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out

    def frame_inbound_payload_data(self, proto: FrameDecoder | FrameProtocol,
                                   data: bytes) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(data)

    def frame_inbound_complete(self, proto: FrameDecoder | FrameProtocol,
                               fin: bool) -> bytes | CloseReason | None:
        if not fin or not self._inbound_is_compressible:
            return None
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        out = self._inflate(_SYNC_TAIL)
        self._inflated = 0
        self._inbound_compressed = None
        if self.client_no_context_takeover:
            self._decompressor = None
        return out


class _EventQueue(list):  # type: ignore[type-arg]
    """wsproto's queue of received events, as a list: it holds one or two events at
    a time, and an idle connection then keeps 56 bytes instead of an empty deque's 600."""

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


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
        phase: a :class:`Phase`.
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

    __slots__ = ("_deflate", "_failure", "_frame_decoder", "_h11", "_hold_failure",
                 "_message_decoder", "_out", "_parts", "_pending", "_size", "_ws", "close_code",
                 "close_reason", "compression", "error", "fast_frames", "fast_path",
                 "max_decompressed_size", "max_message_size", "phase", "request", "subprotocol")

    def __init__(self, max_message_size: int = 1 * MiB, compression: bool = True,
                 max_decompressed_size: int | None = None, fast_path: bool = True) -> None:
        super().__init__(max_message_size)
        self.max_message_size = max_message_size
        self.compression = compression
        self.max_decompressed_size = min(max_decompressed_size or max_message_size,
                                         max_message_size)
        self.phase = HANDSHAKE
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
        self._deflate: _BoundedDeflate | None = None  # permessage-deflate, when negotiated
        # wsproto's frame and message decoders, to see that it is between messages.
        self._frame_decoder: Any = None
        self._message_decoder: Any = None

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
        _check_handshake(event)
        self.request = WebSocketRequest(event, remote_address)
        self._pending = trailing
        self.phase = CONNECTING
        return self.request

    def _read_handshake(self, data: bytes) -> list[Any]:
        conn = self._h11
        assert conn is not None
        conn.receive_data(data)
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise _error(exc.error_status_hint, str(exc)) from None
            if event is h11.NEED_DATA:
                return []
            if isinstance(event, h11.Request):
                _check_handshake(event)
                self.request = WebSocketRequest(event)
            elif event is h11.PAUSED:
                # h11 stops after an upgrade request: what follows is ours to feed.
                self._pending = conn.trailing_data[0]
                self._h11 = None
                self.phase = CONNECTING
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
        if self.phase is not CONNECTING or request is None:
            raise LocalProtocolError(f"cannot accept a WebSocket in phase {self.phase.value}")
        out = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
               (b"Sec-WebSocket-Accept", generate_accept_token(request.key))]
        if subprotocol is not None:
            out.append((b"Sec-WebSocket-Protocol", subprotocol.encode()))
        extensions = []
        if self.compression:
            for offer in request.extensions:
                normalized = _deflate_offer(offer)
                if normalized is None:
                    continue
                deflate = _BoundedDeflate(self.max_decompressed_size)
                params = deflate.accept(normalized)
                if params is not None:
                    value = f"permessage-deflate; {params}" if params else "permessage-deflate"
                    out.append((b"Sec-WebSocket-Extensions", value.encode()))
                    extensions.append(deflate)
                    break
        out += headers
        self._out.append(_http_response(101, out))
        self.subprotocol = subprotocol
        self.phase = OPEN
        if extensions or not self.fast_path:
            self._start_wsproto(extensions)
        # else wsproto starts on first need: until then the fast path does all
        # the work, and an idle connection does not carry wsproto's objects.
        pending, self._pending = self._pending, b""
        return self._receive_frames(pending) if pending else []

    def _start_wsproto(self, extensions: list[Any] | None = None) -> WSConnection:
        """wsproto's connection, fresh: the state it would have after the fast path's frames."""
        ws = self._ws = WSConnection(ConnectionType.SERVER, extensions)
        ws._events = _EventQueue()  # type: ignore[assignment]
        if self.fast_path:
            self._deflate = extensions[0] if extensions else None
            self._frame_decoder = ws._proto._frame_decoder
            self._message_decoder = ws._proto._message_decoder
        return ws

    def _wsproto(self) -> WSConnection | None:
        """wsproto's connection once accepted (started now if need be), else None."""
        if self._ws is None and self.phase is OPEN:
            return self._start_wsproto()
        return self._ws

    def reject(self, status: int = 403, headers: Iterable[tuple[bytes, bytes]] = (),
               body: bytes = b"") -> None:
        """Refuse the handshake with an HTTP answer; the connection closes after it."""
        if self.phase is not CONNECTING:
            raise LocalProtocolError(f"cannot reject a WebSocket in phase {self.phase.value}")
        self._out.append(_http_response(status, headers, body))
        self.phase = CLOSED
        self.closed = True

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
        if phase is OPEN:
            return self._receive_frames(data)
        if phase is HANDSHAKE:
            return self._read_handshake(data)
        if phase is CONNECTING:
            self._pending += data
            if len(self._pending) > self.max_message_size + 64 * 1024:
                raise RemoteProtocolError("too much data before the handshake was accepted")
        return []

    def _fast_frames(self, data: bytes, messages: list[Any]) -> int:
        """Decode the complete, simple frames at the start of ``data``; returns the bytes used.

        Simple: FIN set, no RSV bit, text or binary, masked, the shortest
        length encoding, at most ``max_message_size``, valid UTF-8 for text.
        Decoding stops at the first frame that is not (or not yet complete):
        wsproto gets the rest. Only called between messages, where wsproto
        would have produced exactly these messages from these bytes, with no
        state left behind (see the differential tests).
        """
        end = len(data)
        pos = 0
        limit = self.max_message_size
        while end - pos >= 6:
            first = data[pos]
            if first != 0x81 and first != 0x82:  # FIN, no RSV, TEXT or BINARY
                break
            length = data[pos + 1] ^ 0x80  # the MASK bit must be set
            if length < 126:
                start = pos + 6
            elif length == 126:
                if end - pos < 8:
                    break
                length = data[pos + 2] << 8 | data[pos + 3]
                if length < 126:
                    break
                start = pos + 8
            elif length == 127:
                if end - pos < 14:
                    break
                length = int.from_bytes(data[pos + 2:pos + 10], "big")
                if length < 65536:  # (a length with the MSB set never fits in data)
                    break
                start = pos + 14
            else:  # not masked
                break
            stop = start + length
            if length > limit or stop > end:
                break
            if length:
                # Unmask as one big integer XOR: C speed, whatever the length.
                mask = data[start - 4:start] * ((length >> 2) + 1)
                payload = (int.from_bytes(data[start:stop], "little")
                           ^ int.from_bytes(mask[:length], "little")).to_bytes(length, "little")
            else:
                payload = b""
            if first == 0x81:
                try:
                    messages.append(payload.decode())
                except UnicodeDecodeError:
                    break  # wsproto fails it with 1007 and its own reason
            else:
                messages.append(payload)
            pos = stop
        self.fast_frames += len(messages)
        return pos

    def _receive_frames(self, data: bytes) -> list[Any]:
        messages: list[Any] = []
        ws = self._ws
        if ws is None:
            fast = True  # not started yet: nothing in progress, nothing closed
        else:
            state = ws.state
            if state is WSState.CLOSED:
                return []
            decoder = self._frame_decoder
            # The fast path only where wsproto holds no byte, frame or message in
            # progress, and no close has begun: there it has no state to keep.
            fast = (decoder is not None and state is WSState.OPEN and self.close_code is None
                    and decoder.header is None and not decoder.buffer.buffer
                    and self._message_decoder.opcode is None and not self._parts)
        if fast:
            used = self._fast_frames(data, messages)
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
        self.phase = CLOSED
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
        self.phase = CLOSED

    def encode(self, message: Any) -> bytes:
        """One message as a frame: ``str`` as text, bytes-like as binary.

        Returns ``b""`` when the connection is not open (not yet accepted, or
        a close frame was sent or received).

        Raises:
            LocalProtocolError: for any other type.
        """
        ws = self._ws
        if self.fast_path:
            # An unmasked FIN frame, as wsproto frames it.
            if isinstance(message, str):
                payload, first = message.encode(), 0x81
            elif isinstance(message, bytes):
                payload, first = message, 0x82
            elif isinstance(message, (bytearray, memoryview)):
                payload, first = bytes(message), 0x82
            else:
                payload, first = b"", 0
            if first and (self.phase is OPEN if ws is None else ws.state is WSState.OPEN):
                deflate = self._deflate
                if deflate is not None and ws is not None:  # (deflate starts wsproto at once)
                    # wsproto's own compressor call, so its state stays wsproto's.
                    opcode = Opcode.TEXT if first == 0x81 else Opcode.BINARY
                    payload = deflate.frame_outbound(ws._proto, opcode, _NO_RSV, payload, True)[1]
                    first |= 0x40  # RSV1: compressed
                size = len(payload)
                if size < 126:
                    return bytes((first, size)) + payload
                if size < 65536:
                    return _PACK_16(first, 126, size) + payload
                return _PACK_64(first, 127, size) + payload
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
            self.phase = CLOSED
            self.closed = True
        return data

    def going_away(self) -> bytes:
        """A ``1001 going away`` close frame (worker stop or reload)."""
        return self.close(CloseCode.GOING_AWAY, "going away")

    @property
    def is_open(self) -> bool:
        """True while messages can be sent (accepted, no close frame sent or received)."""
        ws = self._ws
        return self.phase is OPEN if ws is None else ws.state is WSState.OPEN

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


def _check_handshake(event: h11.Request) -> None:
    """Refuse a request that is not a WebSocket opening handshake (RFC 6455, 4.2.1)."""
    if event.method != b"GET":
        raise _error(405, "a WebSocket handshake must be a GET", [(b"Allow", b"GET")])
    if event.http_version != b"1.1":
        raise _error(400, "a WebSocket handshake needs HTTP/1.1")
    upgrade = connection = version = key = b""
    for name, value in event.headers:
        if name == b"upgrade":
            upgrade += b"," + value
        elif name == b"connection":
            connection += b"," + value
        elif name == b"sec-websocket-version":
            version = value
        elif name == b"sec-websocket-key":
            key = value
    tokens = [t.strip().lower() for t in connection.split(b",")]
    protocols = [t.strip().lower() for t in upgrade.split(b",")]
    if b"websocket" not in protocols or b"upgrade" not in tokens:
        raise _error(426, "this endpoint only speaks WebSocket",
                     [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                      (b"Sec-WebSocket-Version", b"13")])
    if version.strip() != b"13":
        raise _error(426, "unsupported Sec-WebSocket-Version (13 is)",
                     [(b"Sec-WebSocket-Version", b"13")])
    try:
        nonce = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != 16:
        raise _error(400, "missing or malformed Sec-WebSocket-Key")

