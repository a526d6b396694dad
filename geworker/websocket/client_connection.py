"""WebSocket client connections: what ``geworker.connect("ws://...")`` and ``wss://`` return.

:class:`WebSocketClientConnection` is a
:class:`~geworker.transport.client.ClientConnection` (connecting, reconnects,
the blocking style, send refused while disconnected) and a
:class:`~geworker.websocket.connection.WebSocketConnection` (``send`` picks
text or binary from the type, ``ping``, the close handshake with its codes,
keepalive pings, the same limits), driving a
:class:`~geworker.websocket.client.WebSocketClientProtocol`:

1. the stream opens (TCP, proxy, TLS), then the opening handshake is sent
   and its answer read, within the same ``connect_timeout``. A refusal or a
   wrong answer fails the attempt with :class:`~geworker.errors.HandshakeError`
   (``on_error``; no ``on_close``);
2. ``on_connect(conn)`` runs with ``conn.response`` (the subprotocol, the
   extensions, the headers of the ``101``);
3. ``on_message(conn, message)`` gets ``str`` (text) or ``bytes`` (binary);
4. ``close(code=1000, reason="")`` sends a close frame and waits up to
   ``close_timeout`` for the server's; a server's close is answered; then
   ``on_close(conn)`` runs with ``conn.close_code`` and ``conn.close_reason``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import ConnectError, HandshakeError
from ..transport.client import ClientConnection
from ..transport.connection import RECV_SIZE, Connection
from .client import WebSocketClientProtocol
from .connection import WebSocketConnection
from .protocol import CloseCode

if TYPE_CHECKING:
    from ..listener import Listener
    from ..transport.backoff import Backoff
    from ..transport.outbound import Endpoint, Steps
    from .client import WebSocketResponse

__all__ = ["WebSocketClientConnection"]


class WebSocketClientConnection(ClientConnection, WebSocketConnection):
    """A WebSocket connection geworker opened (see the module documentation).

    Args:
        listener: the parsed URL (its protocol is ``WebSocketClientProtocol``).
        endpoint: where to connect.
        host: the ``Host`` header.
        target: the path and query to ask for.
        subprotocols: offered, in order of preference.
        headers: extra ``(name, value)`` byte pairs for the handshake request.

    Attributes:
        response: the :class:`~geworker.websocket.client.WebSocketResponse`
            of the current connection (None before the first).
    """

    protocol: WebSocketClientProtocol

    def __init__(self, listener: Listener, endpoint: Endpoint, host: str, target: str = "/",
                 subprotocols: list[str] | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None,
                 backoff: Backoff | None = None, log: Any = None) -> None:
        super().__init__(listener, endpoint, backoff, log)
        self.host = host
        self.target = target
        self.subprotocols = list(subprotocols or ())
        self.headers = list(headers or ())
        self.response: WebSocketResponse | None = None
        self._first: list[Any] = []  # messages that came with the handshake answer

    def close(self, message: Any = None, code: int = CloseCode.NORMAL, reason: str = "") -> None:
        """Send ``message`` (if given), then the close frame with ``code``; connect no more.

        Cancels a scheduled reconnect and abandons an attempt under way
        (see :meth:`ClientConnection.close`).
        """
        if not self._itself and self._stop():
            return
        WebSocketConnection.close(self, message, code, reason)

    # -- the attempt ------------------------------------------------------

    def _client_handshake(self, sock: Any, steps: Steps) -> WebSocketClientProtocol:
        """Send the opening handshake and read the answer (see the module documentation)."""
        url = self.listener.url
        steps.now = "the WebSocket handshake"
        protocol = WebSocketClientProtocol.for_listener(self.listener.options)
        try:
            sock.sendall(protocol.handshake(self.host, self.target, self.subprotocols,
                                            self.headers))
            while True:
                data = sock.recv(RECV_SIZE)
                if not data:
                    protocol.connection_lost()
                received = protocol.receive_data(data)
                if received:
                    break
        except HandshakeError as exc:
            raise HandshakeError(url, exc.reason, exc.status, exc.headers, exc.body) from None
        except OSError as exc:
            raise ConnectError(url, f"the connection was lost during the WebSocket handshake: "
                                    f"{exc}") from exc
        self._first = received  # [response, *messages]
        return protocol

    def _open(self, sock: Any, peer: Any, protocol: Any) -> None:
        super()._open(sock, peer, protocol)
        self.response, *self._first = self._first

    def _start(self) -> bool:
        """``on_connect``, keepalive, then what came with the handshake answer."""
        out = self.protocol.data_to_send()  # (pongs to pings sent with the answer)
        if out:
            self.send_raw(out)
        if not Connection._start(self):
            return False
        self._start_keepalive()
        first, self._first = self._first, []
        if first:
            self._dispatch(first)
        self._after_batch()
        return True

    def _dispatch(self, messages: list[Any]) -> bool:
        self._handler = self._callbacks.get("on_message")  # (callbacks may be set any time)
        return super()._dispatch(messages)

    def _message_handler(self) -> Any:
        return self._callbacks.get("on_message")

    def __repr__(self) -> str:
        return (f"<geworker.WebSocketClientConnection #{self.id} {self.listener.url} "
                f"{self._state.value} connects={self.connects}>")
