"""The server side of a TLS handshake, run in the connection's greenlet.

The worker wraps each accepted socket of a TLS listener here, before the
connection object exists: the handshake is bounded by
``tls_handshake_timeout``, and a peek at the first byte tells a TLS
ClientHello (``0x16``) from plain text, so that a client speaking plain HTTP
to a TLS port gets a short ``400`` naming ``https://``/``wss://`` instead of
a failed handshake.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING, Any

from ..stats import counters

if TYPE_CHECKING:
    from ..listener import Listener

__all__ = ["PLAIN_HTTP_ON_TLS", "tls_handshake"]

#: The answer to a client that sent plain text (HTTP, probably) to a TLS listener.
PLAIN_HTTP_ON_TLS = (b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 44\r\nConnection: close\r\n\r\n"
                     b"This port expects TLS: use https:// or wss.\n")


#: The oldest TLS version a listener accepts by default.
MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2


def harden(context: ssl.SSLContext) -> ssl.SSLContext:
    """geworker's TLS defaults on a context it made: TLS 1.2 or newer, no
    compression, no renegotiation."""
    if context.minimum_version < MINIMUM_VERSION or (
            context.minimum_version == ssl.TLSVersion.MINIMUM_SUPPORTED):
        context.minimum_version = MINIMUM_VERSION
    context.options |= ssl.OP_NO_COMPRESSION | getattr(ssl, "OP_NO_RENEGOTIATION", 0)
    return context


def weaknesses(context: ssl.SSLContext) -> list[str]:
    """What an application's own context allows that geworker's defaults do not."""
    found = []
    if context.minimum_version < MINIMUM_VERSION or (
            context.minimum_version == ssl.TLSVersion.MINIMUM_SUPPORTED):
        found.append(f"TLS versions below 1.2 ({context.minimum_version.name})")
    if not context.options & ssl.OP_NO_COMPRESSION:
        found.append("TLS compression")
    return found


def tls_handshake(sock: Any, address: Any, listener: Listener, context: ssl.SSLContext,
                  log: Any) -> Any:
    """Run the server side of a TLS handshake in the connection's greenlet.

    Returns the TLS socket, or None after closing a client that sent plain
    text (answered with a plain HTTP 400), timed out or failed the handshake.
    """
    sock.settimeout(listener.options.tls_handshake_timeout)
    try:
        first = sock.recv(1, socket.MSG_PEEK)
        if first and first != b"\x16":  # not a TLS handshake record
            if first.isalpha():
                sock.sendall(PLAIN_HTTP_ON_TLS)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(0.5)
                sock.recv(65536)  # read the request, so closing sends FIN, not RST
            log.info("geworker: plain text from %s on TLS listener %s; closed",
                     address, listener.url)
            sock.close()
            return None
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        tls.do_handshake()
    except (OSError, ssl.SSLError) as exc:
        counters.errors["tls_handshake"] += 1
        log.info("geworker: TLS handshake with %s on %s failed: %s", address, listener.url, exc)
        sock.close()
        return None
    tls.settimeout(None)
    return tls
