"""Which backend a ``messaging`` setting names."""

from __future__ import annotations

import importlib.util
from typing import Any

from ..errors import ConfigurationError
from .backend import DEFAULT_TIMEOUT, Backend
from .redis_layout import parse_url

__all__ = ["MESSAGING_ENV", "backend_for_url", "check_url"]

#: The environment variable that sets the backend when the app does not.
MESSAGING_ENV = "GEWORKER_MESSAGING"
_REDIS = ("redis://", "rediss://", "redis+cluster://", "rediss+cluster://", "unix://")


def check_url(url: str) -> str:
    """``url`` if it names a backend: ``local``, or a well-formed Redis URL.

    Checked where the setting is given (``Server``, ``App``), so a mistake
    fails the start with its reason; redis-py is looked for, not imported.

    Raises:
        ConfigurationError: naming what is accepted, what is wrong with the
            URL, or that redis-py is missing.
    """
    if url == "local":
        return url
    if url.startswith(_REDIS):
        parse_url(url)
        if importlib.util.find_spec("redis") is None:
            raise ConfigurationError(f"messaging={url!r}: the Redis backend needs redis-py: "
                                     "pip install 'geworker[redis]'")
        return url
    raise ConfigurationError(
        f"messaging={url!r}: use 'local' (the default: between the workers of one instance) "
        "or a Redis URL (redis://, rediss://, redis+cluster://, rediss+cluster://)")


def backend_for_url(url: str, listen: bool, timeout: float = DEFAULT_TIMEOUT,
                    log: Any = None) -> Backend:
    """A Redis backend for ``url`` (redis-py is imported here, not before).

    Raises:
        ConfigurationError: for a bad URL, or when redis-py is not installed.
    """
    check_url(url)
    if url == "local":
        raise ConfigurationError("messaging='local' needs the instance's run directory")
    from .redis import RedisBackend

    return RedisBackend(url, listen=listen, timeout=timeout, log=log)
