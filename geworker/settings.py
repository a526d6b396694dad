"""Per-listener limits, declared once with their defaults, validation and docs.

A :class:`Server` holds one :class:`Options`; each listener may override any
field (``server.listen("frame://...", max_package_size=65536)``).
"""

from __future__ import annotations

import dataclasses
import ssl
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = ["KiB", "MiB", "Options"]

KiB = 1024
MiB = 1024 * KiB


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field with its documentation attached as metadata."""
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class Options:
    """Limits and behaviour of a listener. Every field has a safe default."""

    max_package_size: int = _doc(
        "Largest incoming message in bytes (frame header included). A peer that "
        "announces or sends more is disconnected with a logged reason.",
        default=10 * MiB,
    )
    max_send_buffer_size: int = _doc(
        "Bytes that may wait in a connection's send queue (data the kernel did not "
        "take at once). Past it, send() drops the message, returns False, counts a "
        "send failure and calls on_error; on_buffer_full fires when it is reached "
        "and on_buffer_drain when the queue empties.",
        default=1 * MiB,
    )
    idle_timeout: float | None = _doc(
        "Seconds a connection may stay silent before it is closed (None: never). "
        "Any received byte resets the clock.",
        default=None,
    )
    message_timeout: float | None = _doc(
        "Seconds a message may take to arrive once its first byte did (a line, a "
        "frame, a WebSocket message and its fragments); a peer that starts one "
        "and stalls is closed with a log line (WebSocket: 1008). Idle "
        "connections are not affected. None: no limit. HTTP has its own "
        "(http_head_timeout, http_body_timeout).",
        default=30.0,
    )
    heartbeat_interval: float | None = _doc(
        "Seconds between heartbeat checks (None: no heartbeat). At each check a "
        "connection that received nothing since the previous one counts a miss; "
        "after heartbeat_missed_limit misses in a row it is closed (a log line, "
        "on_close runs). Any received byte counts as alive. WebSocket connections "
        "are sent a ping frame at each check unless heartbeat_data is set.",
        default=None,
    )
    heartbeat_missed_limit: int = _doc(
        "Heartbeat checks in a row with nothing received before a connection is "
        "closed: a silent peer goes after about limit x interval seconds.",
        default=2,
    )
    heartbeat_data: Any = _doc(
        "An application ping sent at each heartbeat check, encoded by the "
        "connection's protocol (e.g. '{\"type\":\"ping\"}' on text://); None "
        "sends nothing (only detects silent peers), except WebSocket ping frames.",
        default=None,
    )
    tcp_keepalive: float | None = _doc(
        "TCP only: turn on the kernel's keepalive probes after this many idle "
        "seconds (then every interval/3, 3 probes), so a vanished peer is "
        "detected even when neither side sends. None leaves the system default.",
        default=None,
    )
    tcp_user_timeout: float | None = _doc(
        "TCP only: seconds sent data may stay unacknowledged before the kernel "
        "drops the connection (TCP_USER_TIMEOUT): a peer that vanished while the "
        "server is sending is detected. None leaves the system default.",
        default=None,
    )
    socket_send_buffer: int | None = _doc(
        "Bytes of the kernel's send buffer per connection (SO_SNDBUF; the kernel "
        "doubles it). With max_send_buffer_size it bounds the memory a client "
        "that stops reading can hold. None: the kernel's autotuning (up to "
        "net.ipv4.tcp_wmem's maximum, 4 MiB by default).",
        default=None,
    )
    send_queue_timeout: float | None = _doc(
        "Seconds a connection's send queue may stay full (max_send_buffer_size) "
        "before the connection is closed as a slow consumer (WebSocket: close code "
        "1008; a log line; on_close runs). None keeps Workerman's rule: messages "
        "sent while it is full are dropped and counted, the connection stays.",
        default=None,
    )
    park_after: float | None = _doc(
        "Seconds a connection may wait for input before it gives up its greenlet "
        "(about 8 KB of memory) until its next byte arrives; callbacks see no "
        "difference. None keeps a greenlet per connection. HTTP keep-alive "
        "connections are never parked.",
        default=1.0,
    )
    ssl_context: ssl.SSLContext | None = _doc(
        "TLS for this listener (https://, wss://, <protocol>+tls://). None: use "
        "gunicorn's certfile/keyfile settings.",
        default=None,
    )
    tls_handshake_timeout: float = _doc(
        "Seconds a TLS client has to complete its handshake; it runs in the "
        "connection's own greenlet, so a slow one never blocks accepting.",
        default=10.0,
    )
    close_timeout: float = _doc(
        "Seconds close() waits for queued data to reach the peer before it drops "
        "the connection anyway.",
        default=5.0,
    )
    http_max_head_size: int = _doc(
        "HTTP: largest request head (request line and headers) in bytes; a bigger "
        "one is answered 431 and the connection closed.",
        default=16 * KiB,
    )
    http_max_request_line: int = _doc(
        "HTTP: longest request line (method, target, version) in bytes; a longer "
        "one is answered 414 and the connection closed. 0: only http_max_head_size "
        "bounds it. gunicorn's limit_request_line, same default.",
        default=4094,
    )
    http_max_header_fields: int = _doc(
        "HTTP: most header fields in a request; more are answered 431 and the "
        "connection closed. 0: no count limit. gunicorn's limit_request_fields.",
        default=100,
    )
    http_max_header_field_size: int = _doc(
        "HTTP: longest header field (name, value and line end) in bytes; a longer "
        "one is answered 431 and the connection closed. 0: only http_max_head_size "
        "bounds it. gunicorn's limit_request_field_size.",
        default=8190,
    )
    http_max_body_size: int = _doc(
        "HTTP: largest request body in bytes (declared or received, chunked "
        "included); a bigger one is answered 413 and the connection closed.",
        default=10 * MiB,
    )
    http_head_timeout: float = _doc(
        "HTTP: seconds to receive a complete request head, counted from the accept "
        "or from the first byte of a keep-alive request. Slower clients get 408 "
        "and are closed.",
        default=10.0,
    )
    http_body_timeout: float = _doc(
        "HTTP: seconds to receive a request body once its head arrived (408 and "
        "close past it); also the longest a streamed response waits for a client "
        "that stopped reading before the connection is closed.",
        default=30.0,
    )
    http_keepalive_timeout: float = _doc(
        "HTTP: seconds an idle keep-alive connection waits for its next request "
        "before it is closed (quietly, as nothing was asked).",
        default=5.0,
    )
    http_max_requests_per_connection: int = _doc(
        "HTTP: requests served on one connection before it is closed (the last "
        "response carries 'Connection: close'); 0 means no limit.",
        default=1000,
    )
    websocket_max_message_size: int = _doc(
        "WebSocket: largest message in bytes, after reassembling its fragments and "
        "inflating it; a bigger one closes the connection with 1009.",
        default=1 * MiB,
    )
    websocket_compression: bool = _doc(
        "WebSocket: accept permessage-deflate when the client offers it (costs "
        "about 300 KiB of zlib state per compressed connection).",
        default=True,
    )
    websocket_max_decompressed_size: int | None = _doc(
        "WebSocket: most bytes one compressed message may inflate to (None: "
        "websocket_max_message_size). Checked while inflating, so a small frame "
        "never expands in memory; past it the connection is closed with 1009.",
        default=None,
    )
    websocket_ping_interval: float | None = _doc(
        "WebSocket: seconds between keepalive pings sent by the server (None: no "
        "pings). A peer that sends nothing within websocket_ping_timeout after a "
        "ping is closed (1011) and on_close runs.",
        default=None,
    )
    websocket_ping_timeout: float = _doc(
        "WebSocket: seconds to wait for any data (the pong) after a keepalive ping.",
        default=20.0,
    )
    websocket_origins: tuple[str, ...] | None = _doc(
        "WebSocket: the Origin values a handshake may carry, e.g. "
        "('https://chat.example.com',); another Origin gets 403 before "
        "on_websocket_connect runs (Cross-Site WebSocket Hijacking: a page on "
        "another site opening a socket with the user's cookies). Compared "
        "case-insensitively; handshakes without Origin (non-browser clients) "
        "pass. None: any Origin.",
        default=None,
    )
    websocket_handshake_timeout: float = _doc(
        "WebSocket: seconds a websocket:// client has to send its opening handshake "
        "after connecting; slower ones are closed.",
        default=10.0,
    )

    def __post_init__(self) -> None:
        if self.max_package_size < 1:
            raise ConfigurationError("max_package_size must be at least 1 byte")
        if self.max_send_buffer_size < 1:
            raise ConfigurationError("max_send_buffer_size must be at least 1 byte")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigurationError("idle_timeout must be positive or None")
        for name in ("message_timeout", "heartbeat_interval", "tcp_keepalive", "tcp_user_timeout",
                     "send_queue_timeout", "socket_send_buffer"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigurationError(f"{name} must be positive or None")
        if self.heartbeat_missed_limit < 1:
            raise ConfigurationError("heartbeat_missed_limit must be at least 1")
        if self.park_after is not None and self.park_after < 0:
            raise ConfigurationError("park_after must not be negative, or None")
        if self.tls_handshake_timeout <= 0:
            raise ConfigurationError("tls_handshake_timeout must be positive")
        if self.ssl_context is not None and not isinstance(self.ssl_context, ssl.SSLContext):
            raise ConfigurationError("ssl_context must be an ssl.SSLContext")
        if self.close_timeout < 0:
            raise ConfigurationError("close_timeout must not be negative")
        if self.http_max_head_size < 256:
            raise ConfigurationError("http_max_head_size must be at least 256 bytes")
        for name in ("http_max_request_line", "http_max_header_fields",
                     "http_max_header_field_size"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must not be negative (0: no limit)")
        if self.http_max_body_size < 0:
            raise ConfigurationError("http_max_body_size must not be negative")
        for name in ("http_head_timeout", "http_body_timeout", "http_keepalive_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be positive")
        if self.http_max_requests_per_connection < 0:
            raise ConfigurationError("http_max_requests_per_connection must not be negative")
        if self.websocket_max_message_size < 1:
            raise ConfigurationError("websocket_max_message_size must be at least 1 byte")
        if (self.websocket_max_decompressed_size is not None
                and self.websocket_max_decompressed_size < 1):
            raise ConfigurationError("websocket_max_decompressed_size must be positive or None")
        if self.websocket_ping_interval is not None and not self.websocket_ping_interval > 0:
            raise ConfigurationError("websocket_ping_interval must be positive or None")
        if self.websocket_origins is not None:
            origins = self.websocket_origins
            if isinstance(origins, str) or not all(isinstance(o, str) for o in origins):
                raise ConfigurationError("websocket_origins is a tuple of str, e.g. "
                                         "('https://example.com',), or None")
            object.__setattr__(self, "websocket_origins", tuple(o.lower() for o in origins))
        for name in ("websocket_ping_timeout", "websocket_handshake_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be positive")

    def replace(self, **changes: Any) -> Options:
        """Return a copy with ``changes`` applied, rejecting unknown names."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **changes)
