"""Listeners: where a server accepts traffic, declared by URL."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigurationError
from .protocols.base import Protocol
from .registry import TLS_ALIASES, TRANSPORTS, connection_class, lookup_protocol
from .settings import Options

__all__ = ["Listener"]



@dataclass(frozen=True)
class Listener:
    """One declared address, its transport, its protocol and its limits.

    Build listeners with :meth:`parse` (``Server.listen`` does). URL forms:

    * ``tcp://host:port``, ``udp://host:port``, ``unix:///path``: raw bytes;
    * ``text://host:port``, ``frame://host:port``, ``<custom>://host:port``;
    * ``<protocol>+<transport>://...`` to pick the transport, e.g.
      ``text+udp://0.0.0.0:9000`` or ``frame+unix:///run/app.sock``;
    * TLS: ``https://``, ``wss://``, or ``<protocol>+tls://`` (e.g.
      ``text+tls://0.0.0.0:2346``), with the listener's ``ssl_context`` option
      or gunicorn's ``certfile``/``keyfile``.
    """

    url: str
    protocol: type[Protocol]
    transport: str
    host: str = ""
    port: int = 0
    path: str = ""
    tls: bool = False
    options: Options = field(default_factory=Options)

    @classmethod
    def parse(
        cls,
        url: str,
        options: Options,
        protocol: type[Protocol] | None = None,
        transport: str | None = None,
    ) -> Listener:
        """Parse a listener URL.

        Raises:
            ConfigurationError: for an unknown scheme, a missing port or path,
                or an unknown transport.
        """
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if not scheme or "://" not in url:
            raise ConfigurationError(f"listener {url!r} needs a scheme, e.g. text://0.0.0.0:2345")
        name, _, url_transport = scheme.partition("+")
        name = TLS_ALIASES.get(name, name)
        tls = scheme in TLS_ALIASES or url_transport == "tls"
        if url_transport == "tls":
            url_transport = "tcp"
        try:
            found, default_transport = lookup_protocol(name)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{url}: {exc}") from None
        chosen = transport or url_transport or default_transport
        if chosen not in TRANSPORTS:
            raise ConfigurationError(f"{url}: unknown transport {chosen!r} "
                                     f"(use {', '.join(TRANSPORTS)} or tls)")
        protocol = protocol or found
        if tls and chosen != "tcp":
            raise ConfigurationError(f"TLS runs over tcp only, not {chosen} ({url!r})")
        if chosen == "unix":
            path = parts.path
            if not path:
                raise ConfigurationError(f"unix listener {url!r} needs a path: unix:///run/app.sock")
            return cls(url, protocol, chosen, path=path, options=options)
        try:
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError(f"bad port in {url!r}: {exc}") from None
        if port is None or parts.hostname is None:
            raise ConfigurationError(f"listener {url!r} needs host:port")
        return cls(url, protocol, chosen, host=parts.hostname, port=port, tls=tls,
                   options=options)

    @property
    def is_datagram(self) -> bool:
        """True for UDP listeners."""
        return self.transport == "udp"

    @property
    def bind(self) -> str:
        """The address in gunicorn's ``--bind`` syntax."""
        if self.transport == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def connection_class(self) -> type:
        """The connection class serving this listener's protocol (imports gevent)."""
        return connection_class(self.protocol)

    @property
    def address(self) -> Any:
        """The socket address: ``(host, port)`` or the unix path."""
        return self.path if self.transport == "unix" else (self.host, self.port)

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly summary (used by the listener probe and ``status``)."""
        return {"url": self.url, "transport": self.transport, "bind": self.bind,
                "protocol": self.protocol.__name__, "tls": self.tls}
