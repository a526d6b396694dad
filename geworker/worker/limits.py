"""How many connections one worker holds: ``worker_connections`` and the open-file limit.

gunicorn's default of 1000 connections per worker is sized for request/response
servers. A worker holding idle long-lived connections costs about 1-4 KB per
connection (parked connections have no greenlet), so geworker sizes the default
by the open-file limit instead: each connection is one file descriptor.
A worker raises its soft ``RLIMIT_NOFILE`` to the hard limit, then keeps
``FD_HEADROOM`` descriptors for everything else (the listeners, log files, the
outbound sockets of callbacks, files served over HTTP). An explicit
``--worker-connections`` (or ``worker_connections`` in a config file) wins,
lowered to what the file limit allows, with a warning.
"""

from __future__ import annotations

import resource

__all__ = ["FD_HEADROOM", "GUNICORN_DEFAULT", "connection_limit", "raise_open_files_limit"]

#: gunicorn's own default for worker_connections.
GUNICORN_DEFAULT = 1000
#: Descriptors a worker keeps for what is not a client connection.
FD_HEADROOM = 256


def raise_open_files_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1 << 20) if soft != resource.RLIM_INFINITY else 1 << 20
    if soft == resource.RLIM_INFINITY or soft >= hard:
        return hard
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard


def connection_limit(configured: int, open_files: int) -> tuple[int, str | None]:
    """The worker's connection cap, and a warning to log when the config was lowered.

    Args:
        configured: the ``worker_connections`` setting (``GUNICORN_DEFAULT``
            when the user did not set it).
        open_files: the worker's open-file limit.
    """
    allowed = max(1, open_files - FD_HEADROOM)
    if configured == GUNICORN_DEFAULT:
        return allowed, None
    if configured > allowed:
        return allowed, (f"worker_connections={configured} is above what the open-file limit "
                         f"allows ({open_files} files, {FD_HEADROOM} kept for other uses): "
                         f"using {allowed}; raise 'ulimit -n' to hold more")
    return configured, None
