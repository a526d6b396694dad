"""Which backend a ``messaging`` setting names."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigurationError
from .backend import DEFAULT_TIMEOUT, Backend

__all__ = ["MESSAGING_ENV", "backend_for_url", "check_url"]

#: The environment variable that sets the backend when the app does not.
MESSAGING_ENV = "GEWORKER_MESSAGING"
_REDIS = ("redis://", "rediss://", "redis+cluster://", "rediss+cluster://", "unix://")


def check_url(url: str) -> str:
    """``url`` if it names a backend: ``local``, or a Redis URL.

    Raises:
        ConfigurationError: naming what is accepted.
    """
    if url == "local" or url.startswith(_REDIS):
        return url
    raise ConfigurationError(
        f"messaging={url!r}: use 'local' (the default: between the workers of one instance) "
        "or a Redis URL (redis://, rediss://, redis+cluster://, rediss+cluster://)")


def backend_for_url(url: str, listen: bool, timeout: float = DEFAULT_TIMEOUT,
                    log: Any = None) -> Backend:
    """A Redis backend for ``url``."""
    check_url(url)
    if url == "local":
        raise ConfigurationError("messaging='local' needs the instance's run directory")
    raise ConfigurationError(f"messaging={url!r}: the Redis backend is not available yet")
