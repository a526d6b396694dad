"""Before gunicorn binds: say at once which declared listener's address is taken.

gunicorn retries a busy address five times over five seconds, logging
``Connection in use: ('127.0.0.1', 2345)`` each time, then exits 1 without
naming the listener. The master checks the declared addresses first and
fails the boot with the listener's URL instead. ``GEWORKER_BIND_RETRY=1``
keeps gunicorn's retries (for a restart racing the old process's exit).
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["RETRY_ENV", "busy_listeners"]

#: Set to 1 to skip the check and let gunicorn retry busy addresses.
RETRY_ENV = "GEWORKER_BIND_RETRY"


def busy_listeners(declared: Iterable[Mapping[str, Any]],
                   environ: Mapping[str, str] = os.environ) -> list[str]:
    """The messages for declared listeners whose address another process holds.

    ``declared`` is the probe's listener descriptions (``url``, ``bind``,
    ``transport``). Sockets inherited from a previous master (``GUNICORN_FD``,
    systemd's ``LISTEN_FDS``) are ours, so nothing is checked then.
    """
    if environ.get(RETRY_ENV) == "1" or "GUNICORN_FD" in environ or "LISTEN_FDS" in environ:
        return []
    return [f"{d['url']} is already in use by another process"
            for d in declared if _in_use(d)]


def _in_use(listener: Mapping[str, Any]) -> bool:
    bind, transport = listener["bind"], listener["transport"]
    if transport == "unix":
        return _unix_in_use(bind.removeprefix("unix:"))
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as sock:
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def _unix_in_use(path: str) -> bool:
    """A unix socket file with a listener behind it (gunicorn replaces a stale one)."""
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        with contextlib.suppress(OSError):
            sock.connect(path)
            return True
    return False
