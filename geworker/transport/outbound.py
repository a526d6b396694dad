"""Opening an outbound stream: DNS, TCP or unix connect, an HTTP proxy's tunnel, TLS.

:func:`open_stream` does one attempt for a client connection, in the
calling greenlet, with gevent's sockets (so it cooperates whether or not the
process is monkey-patched). Each failure raises the
:class:`~geworker.errors.ConnectError` subclass that names its cause, with
a message that says what failed and, where it helps, what to check. The
caller bounds the whole attempt with one timeout and reads
:attr:`Steps.now` to say which step it cut short.

TLS verifies the server's certificate and host name by default, against the
system's CA store (``ssl.create_default_context()``); an ``ssl_context``
replaces that.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import gevent.socket

from ..errors import (
    ConfigurationError,
    ConnectError,
    ConnectRefused,
    DNSError,
    ProxyError,
    TLSError,
)
from . import _gevent

__all__ = ["Endpoint", "Proxy", "Steps", "default_tls_context", "open_stream"]

#: Largest proxy answer head read.
MAX_PROXY_HEAD = 16 * 1024


class Steps:
    """What an attempt is doing now, for the message of a timeout that cuts it short."""

    __slots__ = ("now",)

    def __init__(self) -> None:
        self.now = "starting"


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy that opens tunnels with ``CONNECT`` (Workerman's ``proxyHttp``).

    Build it with :meth:`parse` from ``http://[user:password@]host:port``.
    """

    host: str
    port: int
    #: The ``Proxy-Authorization`` value (Basic), when the URL has credentials.
    authorization: str | None = None

    @classmethod
    def parse(cls, url: str) -> Proxy:
        """Parse a proxy URL.

        Raises:
            ConfigurationError: for anything but ``http://host:port`` (TLS to
                the proxy itself is not supported).
        """
        parts = urlsplit(url)
        if parts.scheme.lower() != "http":
            raise ConfigurationError(
                f"proxy {url!r}: only http:// CONNECT proxies are supported (the tunnel "
                "carries TLS end to end when the URL is wss:// or PROTO+tls://)")
        try:
            port = parts.port or 8080
        except ValueError as exc:
            raise ConfigurationError(f"bad port in proxy {url!r}: {exc}") from None
        if not parts.hostname:
            raise ConfigurationError(f"proxy {url!r} needs a host: http://host:port")
        authorization = None
        if parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        return cls(parts.hostname, port, authorization)


@dataclass(frozen=True)
class Endpoint:
    """Where a client connection goes and how it gets there.

    Attributes:
        url: the URL as given (for messages).
        transport: ``"tcp"``, ``"unix"`` or ``"udp"``.
        host / port: the server (tcp and udp).
        path: the socket file (unix).
        tls: wrap the stream in TLS.
        ssl_context: the TLS context (None: verify against the system's CA store).
        server_hostname: the name the certificate must carry (None: ``host``).
        proxy: the HTTP proxy to tunnel through, if any.
        connect_timeout: seconds the whole attempt may take.
    """

    url: str
    transport: str
    host: str = ""
    port: int = 0
    path: str = ""
    tls: bool = False
    ssl_context: ssl.SSLContext | None = None
    server_hostname: str | None = None
    proxy: Proxy | None = None
    connect_timeout: float = 10.0

    @property
    def address(self) -> Any:
        """``(host, port)``, or the unix path."""
        return self.path if self.transport == "unix" else (self.host, self.port)


_default_context: ssl.SSLContext | None = None


def default_tls_context() -> ssl.SSLContext:
    """The context client connections verify with by default: the system's CA
    store, host names checked (made once per process: loading the store takes
    milliseconds)."""
    global _default_context
    if _default_context is None:
        _default_context = ssl.create_default_context()
    return _default_context


def open_stream(endpoint: Endpoint, steps: Steps) -> tuple[Any, Any]:
    """Connect, tunnel and wrap in TLS as ``endpoint`` says; returns ``(socket, peer address)``.

    The socket is a gevent socket (a gevent ``SSLSocket`` with TLS), in
    blocking mode with no timeout: the caller bounds the attempt. Whatever
    is raised, including the caller's timeout, closes the socket.

    Raises:
        ConnectError: a subclass naming the cause.
    """
    url = endpoint.url
    if endpoint.transport == "unix":
        return _connect_unix(endpoint, steps), endpoint.path
    proxy = endpoint.proxy
    if proxy is None:
        sock, peer = _connect_tcp(url, endpoint.host, endpoint.port, steps)
    else:  # the peer is known by name only: the proxy resolves it
        sock, _ = _connect_tcp(url, proxy.host, proxy.port, steps, "the proxy ")
        peer = (endpoint.host, endpoint.port)
    try:
        if proxy is not None:
            _tunnel(url, sock, proxy, endpoint.host, endpoint.port, steps)
        if endpoint.tls:
            sock = _tls(endpoint, sock, steps)
    except BaseException:
        sock.close()
        raise
    return sock, peer


def _connect_unix(endpoint: Endpoint, steps: Steps) -> Any:
    steps.now = f"connecting to {endpoint.path}"
    sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(endpoint.path)
    except (ConnectionRefusedError, FileNotFoundError) as exc:
        sock.close()
        raise ConnectRefused(endpoint.url, f"nothing listens on {endpoint.path} "
                             f"({exc.strerror})") from exc
    except OSError as exc:
        sock.close()
        raise ConnectError(endpoint.url, f"cannot connect to {endpoint.path}: {exc}") from exc
    except BaseException:
        sock.close()
        raise
    return sock


def _connect_tcp(url: str, host: str, port: int, steps: Steps,
                 what: str = "") -> tuple[Any, Any]:
    """The first address of ``host`` that accepts; DNS and connect errors typed."""
    steps.now = f"resolving {what}{host}"
    try:
        infos = gevent.socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DNSError(url, f"cannot resolve {what}host {host!r}: {exc.strerror}") from exc
    failures: list[tuple[Any, OSError]] = []
    for family, kind, proto, _, address in infos:
        steps.now = f"connecting to {what}{_show(address)}"
        sock = gevent.socket.socket(family, kind, proto)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            failures.append((address, exc))
            continue
        except BaseException:
            sock.close()
            raise
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address
    last = failures[-1][1] if failures else OSError("no address")
    tried = ", ".join(_show(a) for a, _ in failures) or f"{host}:{port}"
    if any(isinstance(e, ConnectionRefusedError) for _, e in failures):
        raise ConnectRefused(url, f"{what}{tried} refused the connection (nothing listens "
                             "there?)") from last
    raise ConnectError(url, f"cannot connect to {what}{tried}: {last.strerror or last}") from last


def _show(address: Any) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _tunnel(url: str, sock: Any, proxy: Proxy, host: str, port: int, steps: Steps) -> None:
    """Ask the proxy for a tunnel to ``host:port``; raise ProxyError unless it answers 2xx."""
    steps.now = f"waiting for the proxy's answer to CONNECT {host}:{port}"
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    lines = [f"CONNECT {target} HTTP/1.1", f"Host: {target}"]
    if proxy.authorization is not None:
        lines.append(f"Proxy-Authorization: {proxy.authorization}")
    try:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = _read_head(sock)
    except OSError as exc:
        raise ProxyError(url, f"the proxy {proxy.host}:{proxy.port} dropped the connection "
                         f"during CONNECT: {exc}") from exc
    status_line = head.split(b"\r\n", 1)[0].decode("latin-1")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/") or not code.isdigit():
        raise ProxyError(url, f"the proxy {proxy.host}:{proxy.port} answered CONNECT with "
                         f"{status_line[:80]!r}, not HTTP")
    status = int(code)
    if not 200 <= status < 300:
        hint = (" (it wants credentials: http://user:password@host:port)"
                if status == 407 else "")
        raise ProxyError(url, f"the proxy {proxy.host}:{proxy.port} refused CONNECT {target}: "
                         f"{status} {reason}{hint}", status)


def _read_head(sock: Any) -> bytes:
    """Read an HTTP answer head, and not one byte past it (the tunnel's data follows)."""
    head = b""
    while True:
        chunk = sock.recv(4096, socket.MSG_PEEK)
        if not chunk:
            raise ConnectionResetError("closed before answering")
        seen = head[-3:] + chunk
        end = seen.find(b"\r\n\r\n")
        take = len(chunk) if end < 0 else end + 4 - len(head[-3:])
        while take:
            part = sock.recv(take)
            if not part:
                raise ConnectionResetError("closed while answering")
            head += part
            take -= len(part)
        if end >= 0:
            return head
        if len(head) > MAX_PROXY_HEAD:
            raise ConnectionResetError(f"answer head longer than {MAX_PROXY_HEAD} bytes")


def _tls(endpoint: Endpoint, sock: Any, steps: Steps) -> Any:
    """The client side of the TLS handshake, verified; TLSError says what failed."""
    hostname = endpoint.server_hostname or endpoint.host
    steps.now = f"the TLS handshake with {hostname}"
    context = endpoint.ssl_context or default_tls_context()
    tls = _gevent.tls_client_socket(sock, context, hostname)  # (owns the descriptor now)
    try:
        tls.do_handshake()
    except ssl.SSLCertVerificationError as exc:
        tls.close()
        store = ("the system's CA store" if endpoint.ssl_context is None
                 else "the given ssl_context")
        hint = (f"the certificate is not issued for {hostname!r}"
                if "hostname" in (exc.verify_message or "").lower()
                else f"the server's certificate is not trusted by {store}")
        raise TLSError(endpoint.url, f"certificate verification failed: {exc.verify_message} "
                       f"({hint}; pass ssl_context= with the CA that issued it, e.g. "
                       "ssl.create_default_context(cafile=...))") from exc
    except ssl.SSLError as exc:
        tls.close()
        reason = exc.reason or str(exc)
        hint = (" (does the server speak TLS on this port?)"
                if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                              "UNEXPECTED_EOF_WHILE_READING")
                or isinstance(exc, ssl.SSLEOFError) else "")
        raise TLSError(endpoint.url, f"TLS handshake with {hostname} failed: "
                       f"{reason}{hint}") from exc
    except OSError as exc:
        tls.close()
        raise TLSError(endpoint.url, f"the server closed the connection during the TLS "
                       f"handshake ({exc}); does it speak TLS on this port?") from exc
    except BaseException:
        tls.close()
        raise
    return tls
