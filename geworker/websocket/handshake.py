"""The WebSocket opening handshake (RFC 6455, section 4): checks, request, decision.

:func:`check_handshake` refuses a request that is not a WebSocket opening
handshake, with the HTTP error answer the RFC asks for (405, 400, 426: a
:class:`~geworker.errors.RemoteProtocolError` carrying its bytes, built by
:func:`geworker.http.responses.error_response`).

:class:`WebSocketRequest` is what ``on_websocket_connect(conn, request)``
sees. The callback's answer is data: :meth:`WebSocketRequest.accept` and
:meth:`WebSocketRequest.reject` record an :class:`Accept` or a
:class:`Reject` in :attr:`WebSocketRequest.decision`, and
:class:`~geworker.websocket.protocol.WebSocketProtocol` acts on it
(:func:`accept_answer` is its ``101`` answer, :func:`reject_answer` its
refusal). No I/O, no gevent.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple

import h11
from wsproto.utilities import generate_accept_token

from ..errors import LocalProtocolError, RemoteProtocolError
from ..http.models import Request
from ..http.protocol import encode_closing
from ..http.responses import check_header, error_response

__all__ = ["Accept", "Reject", "WebSocketRequest", "accept_answer", "check_handshake",
           "refusal", "reject_answer"]

HeadersArg = Mapping[str, str] | Iterable[tuple[str, str]]
HeaderPairs = list[tuple[bytes, bytes]]


class Accept(NamedTuple):
    """The decision to accept: the chosen subprotocol (None: none) and extra headers."""

    kind: Literal["accept"]
    subprotocol: str | None
    headers: HeaderPairs


class Reject(NamedTuple):
    """The decision to refuse with an HTTP ``status``, headers and a body (None: standard)."""

    kind: Literal["reject"]
    status: int
    headers: HeaderPairs
    body: bytes | None


def _header_pairs(headers: HeadersArg) -> HeaderPairs:
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [check_header(name, value) for name, value in items]


def _split(value: bytes) -> list[str]:
    return [part.strip() for part in value.decode("latin-1").split(",") if part.strip()]


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
        key: the ``Sec-WebSocket-Key``.
        decision: the :class:`Accept` or :class:`Reject` recorded, else None.
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
        self.decision: Accept | Reject | None = None

    def accept(self, subprotocol: str | None = None, headers: HeadersArg = ()) -> None:
        """Complete the handshake, optionally choosing a subprotocol and adding headers.

        Raises:
            LocalProtocolError: ``subprotocol`` was not offered by the client,
                or a header name/value is invalid (CR, LF, NUL).
        """
        if subprotocol is not None and subprotocol not in self.subprotocols:
            raise LocalProtocolError(
                f"subprotocol {subprotocol!r} was not offered (offered: {self.subprotocols})")
        self.decision = Accept("accept", subprotocol, _header_pairs(headers))

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
        self.decision = Reject("reject", status, _header_pairs(headers), data or None)

    def __repr__(self) -> str:
        return f"<geworker.WebSocketRequest {self.target} subprotocols={self.subprotocols}>"


def refusal(status: int, reason: str,
            headers: Iterable[tuple[bytes, bytes]] = ()) -> RemoteProtocolError:
    """A refused handshake: the peer gets ``status`` with ``reason`` as a text body."""
    return RemoteProtocolError(f"WebSocket handshake refused ({status}): {reason}",
                               encode_closing(error_response(status, reason, headers)))


def check_handshake(event: h11.Request) -> None:
    """Refuse a request that is not a WebSocket opening handshake (RFC 6455, 4.2.1).

    Raises:
        RemoteProtocolError: with the HTTP answer for the peer.
    """
    if event.method != b"GET":
        raise refusal(405, "a WebSocket handshake must be a GET", [(b"Allow", b"GET")])
    if event.http_version != b"1.1":
        raise refusal(400, "a WebSocket handshake needs HTTP/1.1")
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
        raise refusal(426, "this endpoint only speaks WebSocket",
                      [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade"),
                       (b"Sec-WebSocket-Version", b"13")])
    if version.strip() != b"13":
        raise refusal(426, "unsupported Sec-WebSocket-Version (13 is)",
                      [(b"Sec-WebSocket-Version", b"13")])
    try:
        nonce = base64.b64decode(key.strip(), validate=True)
    except (binascii.Error, ValueError):
        nonce = b""
    if len(nonce) != 16:
        raise refusal(400, "missing or malformed Sec-WebSocket-Key")


def accept_answer(key: bytes, subprotocol: str | None, extension: str | None,
                  headers: Iterable[tuple[bytes, bytes]] = ()) -> bytes:
    """The ``101 Switching Protocols`` answer to a handshake with ``Sec-WebSocket-Key: key``.

    Args:
        key: the client's key.
        subprotocol: the chosen subprotocol, if any.
        extension: the ``Sec-WebSocket-Extensions`` value, if one was negotiated.
        headers: validated extra ``(name, value)`` pairs.
    """
    head = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n" % generate_accept_token(key)]
    if subprotocol is not None:
        head.append(b"Sec-WebSocket-Protocol: %s\r\n" % subprotocol.encode())
    if extension is not None:
        head.append(b"Sec-WebSocket-Extensions: %s\r\n" % extension.encode())
    head.extend(b"%s: %s\r\n" % pair for pair in headers)
    head.append(b"\r\n")
    return b"".join(head)


def reject_answer(status: int, headers: Iterable[tuple[bytes, bytes]] = (),
                  body: bytes | None = None) -> bytes:
    """The HTTP answer refusing a handshake (see :meth:`WebSocketRequest.reject`)."""
    return encode_closing(error_response(status, "", headers, body))
