"""gunicorn's start banner, with the URLs the app declares.

gunicorn logs ``Listening at: http://127.0.0.1:2345 (pid)`` for every stream
address, whatever its protocol, and nothing for UDP. A filter on its error
logger rewrites that one line to list every declared listener by URL.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

__all__ = ["ListenerBanner", "install"]

_BANNERS = ("Listening at: %s (%s)", "Listening at: %s")


class ListenerBanner(logging.Filter):
    """Replaces the addresses of gunicorn's ``Listening at:`` line with ``urls``."""

    def __init__(self, urls: Sequence[str]) -> None:
        super().__init__()
        self.urls = " ".join(urls) or "no listener"

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the banner record in place; let every record through."""
        if record.msg in _BANNERS and isinstance(record.args, tuple) and record.args:
            record.args = (self.urls, *record.args[1:])
        return True


def install(urls: Sequence[str], logger_name: str = "gunicorn.error") -> None:
    """Put the banner filter on gunicorn's error logger (once; later calls replace it)."""
    logger = logging.getLogger(logger_name)
    for old in [f for f in logger.filters if isinstance(f, ListenerBanner)]:
        logger.removeFilter(old)
    logger.addFilter(ListenerBanner(urls))
