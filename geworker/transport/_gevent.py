"""Every use geworker makes of gevent's private internals, in one place.

gevent's public API has no way to ask for some things a server kit needs: a
socket's read watcher (to wait without a pending ``recv``, and to tell what
a waiting greenlet waits for), the OS socket under the cooperative wrapper
(to write without waiting), the TLS session of an ``SSLSocket`` (ditto),
a cooperative TLS client socket built on any ``ssl.SSLContext`` (the
stdlib's in an unpatched script too), and the hooks of ``StreamServer``
and ``DatagramServer`` that decide when to accept, when to close a handled
socket, and how to read a datagram.

Each access is a small named function here, and nothing else in geworker
touches an underscore attribute of a gevent object.
``tests/unit/transport/test_gevent_compat.py`` checks each of them against
the installed gevent and names the attribute that went missing, and
``pyproject.toml`` bounds gevent to the major version those tests passed on.

Also relied upon, though public in name: ``loop.iteration`` (a counter of
loop iterations, not part of gevent's ``ILoop`` interface), checked by the
same tests. And worked around: a libev one-shot timer started again after it
fired fires at once (:class:`OneShot`).
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from typing import Any

__all__ = [
    "OneShot",
    "accept_retry",
    "datagram_os_socket",
    "guard_accept",
    "has_read_watcher",
    "keep_socket_open",
    "os_socket",
    "read_watcher",
    "set_accept_gate",
    "stop_datagram_reads",
    "tls_client_socket",
    "tls_session",
]


def read_watcher(sock: Any) -> Any:
    """The libev read watcher of a gevent socket (``sock._read_event``).

    gevent starts it while a greenlet waits in ``recv``; ``hub.wait(watcher)``
    waits for input without reading. gevent's own ``shutdown``/``close``
    cancel whatever is registered on it, so a caller that starts it with its
    own callback must stop it before the socket is shut or closed.
    """
    return sock._read_event


def has_read_watcher(sock: Any) -> bool:
    """True for gevent sockets (plain and TLS); False for anything else."""
    return hasattr(sock, "_read_event")


def os_socket(sock: Any) -> Any:
    """The non-blocking OS socket under a gevent socket (``sock._sock``); ``sock`` otherwise.

    Its ``send``/``recv`` raise ``BlockingIOError`` instead of waiting.
    """
    return getattr(sock, "_sock", sock)


def tls_session(sock: Any) -> Any:
    """The ``ssl.SSLObject`` of a gevent ``SSLSocket`` (``sock._sslobj``), else None.

    Its ``write`` raises ``SSLWantWriteError`` instead of waiting.
    """
    return getattr(sock, "_sslobj", None)


def tls_client_socket(sock: Any, context: Any, server_hostname: str | None) -> Any:
    """A gevent ``SSLSocket`` for the client side of ``sock``, on ``context``.

    gevent's ``SSLSocket`` takes any ``ssl.SSLContext`` through its private
    ``_context`` argument; ``context.wrap_socket`` would build a blocking
    stdlib socket when the context is the stdlib's (an unpatched process).
    ``sock`` is detached: the TLS socket owns its file descriptor. The
    handshake is left to the caller (``do_handshake()``).
    """
    from gevent.ssl import SSLSocket

    return SSLSocket(sock=sock, server_side=False, server_hostname=server_hostname,
                     do_handshake_on_connect=False, _context=context)


def _leave_open(*args: Any) -> None:
    """In place of ``StreamServer.do_close``: leave the handled socket alone."""


def keep_socket_open(server: Any) -> None:
    """Stop a ``StreamServer`` from closing a socket when its handler returns.

    Replaces ``server.do_close``: a parked connection's handler returns while
    the connection lives on; the connection closes its socket itself.
    """
    server.do_close = _leave_open


def set_accept_gate(server: Any, full: Callable[[], bool]) -> None:
    """Make ``server`` stop accepting while ``full()`` is true (replaces ``server.full``).

    gevent calls ``full()`` before each accept; once it is true the server
    stops watching its socket until :func:`accept_retry`'s callable runs.
    """
    server.full = full


def accept_retry(server: Any) -> Callable[..., None]:
    """What resumes accepting on a server stopped by its gate
    (``server._start_accepting_if_started``); a timer may call it."""
    return server._start_accepting_if_started  # type: ignore[no-any-return]


#: accept() errors that say a resource ran out, not that the listener broke.
EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def guard_accept(server: Any, exhausted: Callable[[OSError], None]) -> None:
    """Turn an exhausted ``accept`` into ``exhausted(exc)`` instead of gevent's traceback.

    gevent's ``StreamServer`` prints a traceback for every failed accept (one
    per pending client, many a second when the open-file limit is reached);
    ``exhausted`` is expected to pause accepting (``server.stop_accepting()``
    and :func:`accept_retry` later), since the pending clients stay readable.
    """
    do_read = server.do_read

    def guarded() -> Any:
        try:
            return do_read()
        except OSError as exc:
            if exc.errno not in EXHAUSTED:
                raise
            exhausted(exc)
            return None

    server.do_read = guarded


def stop_datagram_reads(server: Any) -> None:
    """Keep a ``DatagramServer`` from resuming reads (sets ``server._stop_event``).

    ``stop_accepting`` alone is undone when a slot of its pool frees up.
    """
    server._stop_event.set()


def datagram_os_socket(server: Any) -> Any:
    """The OS socket a ``DatagramServer`` reads from (``server._socket``)."""
    return server._socket


class OneShot:
    """A one-shot timer that waits its full delay each time it is started.

    gevent's libev timer, started again once it has fired, fires on the
    next loop iteration whatever its delay (its expiry is not re-based on the
    loop's clock): a back-off restarted from its own callback becomes a busy
    loop. Each start here makes a fresh watcher instead.
    """

    __slots__ = ("_loop", "_seconds", "_timer")

    def __init__(self, loop: Any, seconds: float) -> None:
        self._loop = loop
        self._seconds = seconds
        self._timer: Any = None

    @property
    def active(self) -> bool:
        """True while it waits to fire."""
        return self._timer is not None and bool(self._timer.active)

    def start(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` once, ``seconds`` from now (nothing if already waiting)."""
        if self.active:
            return
        if self._timer is not None:
            self._timer.close()
        self._timer = self._loop.timer(self._seconds)
        self._timer.start(callback)

    def stop(self) -> None:
        """Cancel it (if it waits)."""
        if self._timer is not None:
            self._timer.close()
            self._timer = None
