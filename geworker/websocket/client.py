"""The client side of a WebSocket connection (sans-IO), for ``geworker.connect("ws://...")``.

:class:`WebSocketClientProtocol` is the server's
:class:`~geworker.websocket.protocol.WebSocketProtocol` with the opening
handshake turned around: :meth:`~WebSocketClientProtocol.handshake` gives the
request to send (wsproto's client mode builds it: the key, the subprotocols,
the permessage-deflate offer, extra headers), and :meth:`receive_data` reads
the answer. A ``101`` that checks out (the accept token, a subprotocol and
extension that were offered) returns a :class:`WebSocketResponse` followed by
any messages that came with it; anything else raises
:class:`~geworker.errors.HandshakeError` with the status, headers and the
start of the body of a refusal.

From then on it is the server's protocol, on wsproto's client connection
(its frames masked, the server's expected unmasked), with the same limits
and behaviour: fragments reassembled under ``max_message_size`` (1009),
inflating bounded by ``max_decompressed_size``, pings answered, the peer's
close echoed, invalid UTF-8 closing with 1007, and nothing sent once the
connection cannot carry it. The fast path stays off (it decodes masked
client frames and frames unmasked ones). No I/O, no gevent.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wsproto import WSConnection as WSHandshake
from wsproto.connection import ConnectionType
from wsproto.events import AcceptConnection, RejectConnection, RejectData, Request
from wsproto.utilities import RemoteProtocolError as WSRemoteProtocolError

from ..errors import HandshakeError, LocalProtocolError
from ..settings import MiB
from .deflate import client_offer
from .protocol import WebSocketPhase, WebSocketProtocol

if TYPE_CHECKING:
    from ..settings import Options

__all__ = ["MAX_REFUSAL_BODY", "WebSocketClientProtocol", "WebSocketResponse"]

#: The most of a refusal's body kept for :class:`~geworker.errors.HandshakeError`.
MAX_REFUSAL_BODY = 64 * 1024

_HANDSHAKE, _OPEN = WebSocketPhase.HANDSHAKE, WebSocketPhase.OPEN


@dataclass(frozen=True)
class WebSocketResponse:
    """The server's ``101`` answer to the opening handshake.

    Attributes:
        subprotocol: the subprotocol the server chose (None: none).
        extensions: the extensions in use (``["permessage-deflate"]`` when compressed).
        headers: the answer's other headers, as ``(name, value)`` byte pairs (names lowercase).
    """

    subprotocol: str | None
    extensions: list[str] = field(default_factory=list)
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first value of header ``name`` (any case), decoded as latin-1."""
        key = name.lower().encode("latin-1")
        for header, value in self.headers:
            if header == key:
                return value.decode("latin-1")
        return default


class WebSocketClientProtocol(WebSocketProtocol):
    """Client side of one WebSocket connection (sans-IO; see the module documentation).

    Args:
        max_message_size: largest message in bytes, after reassembly and
            inflating; a bigger one closes the connection with 1009.
        compression: offer permessage-deflate.
        max_decompressed_size: largest inflated message (None: ``max_message_size``).

    Attributes:
        response: the :class:`WebSocketResponse` once the handshake succeeded.
    """

    __slots__ = ("_client", "_refusal", "response")

    def __init__(self, max_message_size: int = 1 * MiB, compression: bool = True,
                 max_decompressed_size: int | None = None) -> None:
        super().__init__(max_message_size, compression, max_decompressed_size, fast_path=False)
        self._h11 = None  # (the server's request parser: wsproto's client reads the answer)
        self._client: WSHandshake | None = None
        self._refusal: tuple[int, list[tuple[bytes, bytes]], list[bytes]] | None = None
        self.response: WebSocketResponse | None = None

    @classmethod
    def for_listener(cls, options: Options) -> WebSocketClientProtocol:
        """A protocol with the ``websocket_*`` limits of ``options``."""
        return cls(options.websocket_max_message_size, options.websocket_compression,
                   options.websocket_max_decompressed_size)

    def handshake(self, host: str, target: str = "/", subprotocols: Iterable[str] = (),
                  headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
        """The opening handshake request, to send first.

        Args:
            host: the ``Host`` header (``host`` or ``host:port``).
            target: the path and query (``/chat?room=1``).
            subprotocols: the subprotocols to offer, in order of preference.
            headers: validated extra ``(name, value)`` byte pairs (``Origin``,
                ``Authorization``, cookies...).

        Raises:
            LocalProtocolError: called twice.
        """
        if self._client is not None:
            raise LocalProtocolError("the WebSocket handshake was already sent")
        client = self._client = WSHandshake(ConnectionType.CLIENT)
        extensions = [client_offer(self.max_decompressed_size)] if self.compression else []
        return client.send(Request(host=host, target=target, subprotocols=list(subprotocols),
                                   extensions=extensions, extra_headers=list(headers)))

    def receive_data(self, data: bytes) -> list[Any]:
        """Feed bytes; returns ``[response, *messages]`` when the handshake completes,
        then complete messages (``str`` or ``bytes``).

        Raises:
            HandshakeError: the server refused the handshake or answered it wrongly.
        """
        if self.phase is _OPEN:
            return self._receive_frames(data)
        if self.phase is _HANDSHAKE:
            return self._read_answer(data)
        return []

    def connection_lost(self) -> None:
        """The server closed the connection before the handshake completed.

        Raises:
            HandshakeError: always (with the refusal, if one was being read).
        """
        if self.phase is not _HANDSHAKE or self._client is None:
            return
        closed = "the server closed the connection during the WebSocket handshake"
        try:
            self._read_answer(None)  # a refusal whose body ran until the close is complete
        except HandshakeError:
            if self._refusal is not None:
                raise
            self._refuse(None, closed)  # (an answer cut short: h11 calls it malformed)
        self._refuse(None, closed)

    def _read_answer(self, data: bytes | None) -> list[Any]:
        client = self._client
        if client is None:
            raise LocalProtocolError("send handshake() before feeding the answer")
        try:
            client.receive_data(data)
        except WSRemoteProtocolError as exc:
            self._refuse(None, f"invalid handshake answer: {exc} (is it a WebSocket server?)")
        for event in client.events():
            if isinstance(event, AcceptConnection):
                self._ws = client.connection  # the frames' connection, in client mode
                self.phase = _OPEN
                self.subprotocol = event.subprotocol
                self.response = WebSocketResponse(
                    event.subprotocol, [ext.name for ext in event.extensions],
                    [(bytes(k).lower(), bytes(v)) for k, v in event.extra_headers])
                # Frames that came with the answer (wsproto holds them as trailing data).
                return [self.response, *self._receive_frames(b"")]
            if isinstance(event, RejectConnection):
                self._refusal = (event.status_code, list(event.headers), [])
                if not event.has_body:
                    self._refuse(event.status_code)
            elif isinstance(event, RejectData) and self._refusal is not None:
                parts = self._refusal[2]
                if sum(map(len, parts)) < MAX_REFUSAL_BODY:
                    parts.append(event.data)
                if event.body_finished:
                    self._refuse(self._refusal[0])
        return []

    def _refuse(self, status: int | None, reason: str = "") -> None:
        """Fail the handshake: closed, and HandshakeError raised."""
        self.phase = WebSocketPhase.CLOSED
        self.closed = True
        headers: list[tuple[bytes, bytes]] = []
        body = b""
        if self._refusal is not None:
            status, headers, parts = self._refusal
            body = b"".join(parts)[:MAX_REFUSAL_BODY]
        if status is not None:
            text = body.decode("utf-8", "replace").strip()
            reason = (f"the server refused the WebSocket handshake: {status}"
                      f"{': ' + text[:200] if text else ''}")
        raise HandshakeError("", reason, status, headers, body)
