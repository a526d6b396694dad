"""The three families of errors geworker raises.

* :class:`LocalProtocolError`: the caller misused the API (sent a message the
  protocol cannot encode, declared an invalid listener...).
* :class:`RemoteProtocolError`: the peer sent bad data. It carries what to
  answer with before the connection is closed.
* Exceptions from user callbacks are not wrapped: they are logged with their
  traceback, handed to ``on_error`` and the connection is closed.

And one for starting up: :class:`BootError`, the instance cannot start.

Outbound connections (``geworker.connect``) add :class:`ConnectError`, the
attempt to connect failed, with one subclass per cause (refused, timed out,
DNS, TLS, proxy, WebSocket handshake), and :class:`ConnectionClosed`, raised
by ``receive()`` once a client connection has ended.
"""

from __future__ import annotations

__all__ = [
    "BootError",
    "ConfigurationError",
    "ConnectError",
    "ConnectRefused",
    "ConnectTimeout",
    "ConnectionClosed",
    "DNSError",
    "GeworkerError",
    "HandshakeError",
    "LocalProtocolError",
    "MessageTooLarge",
    "ProxyError",
    "RemoteProtocolError",
    "SendBufferFull",
    "TLSError",
]


class GeworkerError(Exception):
    """Base class of every error geworker raises itself."""


class ConfigurationError(GeworkerError):
    """A server, listener or setting was declared in a way that cannot work."""


class BootError(GeworkerError):
    """gunicorn's master cannot start the instance as configured; the message says why.

    Raised where the problem is found (a bad ``--bind``, an impossible
    ``--user``, a metrics address in use...); the master's entry point
    (``geworker.master.configure.setup_from_gunicorn``) turns it into one line
    on stderr and exit code :attr:`exit_code`.
    """

    #: gunicorn's "worker failed to boot" code: the master halts instead of respawning.
    exit_code = 3


class LocalProtocolError(GeworkerError):
    """The application asked a protocol to do something it cannot do.

    For example sending a ``dict`` on a ``frame://`` listener, which only
    carries bytes and text.
    """


class RemoteProtocolError(GeworkerError):
    """The peer sent data that breaks the protocol.

    Args:
        reason: a short human-readable explanation, used in the log line.
        response: bytes to send to the peer before closing (an HTTP error
            response, a WebSocket close frame...); empty for none.
    """

    def __init__(self, reason: str, response: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


class MessageTooLarge(RemoteProtocolError):
    """An incoming message is larger than the listener's ``max_package_size``."""


class SendBufferFull(GeworkerError):
    """``Connection.send`` dropped a message because the send queue is full.

    Passed to ``on_error``; the connection stays open.
    """


class ConnectError(GeworkerError):
    """An outbound connection could not be established (``geworker.connect``).

    Handed to ``on_error`` (``on_close`` does not run: the connection never
    opened), raised by ``wait_connected()`` and by ``connect(blocking=True)``.
    The message names the URL, the step that failed and, where it helps,
    what to check. Subclasses say why; this class itself covers the rest
    (an unreachable network, a connection reset during the handshake...).

    Attributes:
        url: the URL that was being connected to.
    """

    #: Short name of the cause, used in the worker's error counters (``connect_<kind>``).
    kind = "error"

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}" if url else reason)
        self.url = url
        self.reason = reason


class ConnectRefused(ConnectError):
    """Nothing listens there: the peer (or a missing unix socket file) refused."""

    kind = "refused"


class ConnectTimeout(ConnectError):
    """The connection was not established within ``connect_timeout``.

    The message names the step that was under way (DNS, TCP, proxy, TLS,
    WebSocket handshake).
    """

    kind = "timeout"


class DNSError(ConnectError):
    """The host name could not be resolved."""

    kind = "dns"


class TLSError(ConnectError):
    """The TLS handshake failed: most often the server's certificate could not
    be verified (untrusted issuer, expired, or not valid for the host name)."""

    kind = "tls"


class ProxyError(ConnectError):
    """The HTTP proxy refused to open the tunnel (``CONNECT``).

    Attributes:
        status: the proxy's HTTP status (None when its answer was not HTTP).
    """

    kind = "proxy"

    def __init__(self, url: str, reason: str, status: int | None = None) -> None:
        super().__init__(url, reason)
        self.status = status


class HandshakeError(ConnectError):
    """The WebSocket server refused the opening handshake, or answered it wrongly.

    Attributes:
        status: the HTTP status of a refusal (None for an invalid answer).
        headers: the refusal's headers, as ``(name, value)`` byte pairs.
        body: the start of the refusal's body (at most 64 KiB).
    """

    kind = "handshake"

    def __init__(self, url: str, reason: str, status: int | None = None,
                 headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b"") -> None:
        super().__init__(url, reason)
        self.status = status
        self.headers = headers or []
        self.body = body


class ConnectionClosed(GeworkerError):
    """``receive()`` on a client connection that has ended, with no message left.

    Attributes:
        close_code / close_reason: the WebSocket close code and reason (None
            and ``""`` for other protocols, or when no close frame came).
    """

    def __init__(self, reason: str, close_code: int | None = None,
                 close_reason: str = "") -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.close_reason = close_reason
