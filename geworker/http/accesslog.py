"""The access log of ``http://`` listeners, through gunicorn's access logger.

One line per answered request, formatted by gunicorn's ``access_log_format``
atoms (``%(h)s "%(r)s" %(s)s %(b)s``...), written only when gunicorn has an
access log configured. gunicorn reads three objects: a response (its
``status``, ``headers`` and ``sent`` byte count: :class:`AccessRecord`), the
request (its ``headers``: a :class:`~geworker.http.Request` has them) and the
CGI environ (:func:`~geworker.http.environ.cgi_environ`, the one the WSGI
application got when one answered).
"""

from __future__ import annotations

import datetime
from typing import Any

from .environ import cgi_environ
from .models import Request
from .responses import reason_phrase

__all__ = ["AccessRecord", "log_access"]


class AccessRecord:
    """What gunicorn's ``Logger.atoms`` reads from a response."""

    __slots__ = ("headers", "sent", "status")

    def __init__(self, status: int, reason: str | None, headers: list[tuple[str, str]],
                 sent: int) -> None:
        self.status = f"{status} {reason if reason is not None else reason_phrase(status)}"
        self.headers = headers
        self.sent = sent


def log_access(log: Any, conn: Any, request: Request, record: AccessRecord,
               elapsed: float) -> None:
    """Write the access line of ``request``, answered with ``record`` in ``elapsed`` seconds.

    Args:
        log: gunicorn's logger (its ``access`` method).
        conn: the connection (``listener`` and ``remote_address`` are read).
        request: the answered request.
        record: the answer.
        elapsed: seconds from the request to its answer.
    """
    environ = (getattr(request, "wsgi_environ", None)
               or cgi_environ(request, conn.listener, conn.remote_address))
    try:
        log.access(record, request, environ, datetime.timedelta(seconds=elapsed))
    except Exception:
        log.exception("geworker: access log failed")
