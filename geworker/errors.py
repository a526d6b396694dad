"""The three families of errors geworker raises.

* :class:`LocalProtocolError`: the caller misused the API (sent a message the
  protocol cannot encode, declared an invalid listener...).
* :class:`RemoteProtocolError`: the peer sent bad data. It carries what to
  answer with before the connection is closed.
* Exceptions from user callbacks are not wrapped: they are logged with their
  traceback, handed to ``on_error`` and the connection is closed.

And one for starting up: :class:`BootError`, the instance cannot start.
"""

from __future__ import annotations

__all__ = [
    "BootError",
    "ConfigurationError",
    "GeworkerError",
    "LocalProtocolError",
    "MessageTooLarge",
    "RemoteProtocolError",
    "SendBufferFull",
]


class GeworkerError(Exception):
    """Base class of every error geworker raises itself."""


class ConfigurationError(GeworkerError):
    """A server, listener or setting was declared in a way that cannot work."""


class BootError(GeworkerError):
    """gunicorn's master cannot start the instance as configured; the message says why.

    Raised where the problem is found (a bad ``--bind``, an impossible
    ``--user``, a metrics address in use...); the master's entry point
    (``geworker.master.configure.setup_from_gunicorn``) turns it into one line
    on stderr and exit code :attr:`exit_code`.
    """

    #: gunicorn's "worker failed to boot" code: the master halts instead of respawning.
    exit_code = 3


class LocalProtocolError(GeworkerError):
    """The application asked a protocol to do something it cannot do.

    For example sending a ``dict`` on a ``frame://`` listener, which only
    carries bytes and text.
    """


class RemoteProtocolError(GeworkerError):
    """The peer sent data that breaks the protocol.

    Args:
        reason: a short human-readable explanation, used in the log line.
        response: bytes to send to the peer before closing (an HTTP error
            response, a WebSocket close frame...); empty for none.
    """

    def __init__(self, reason: str, response: bytes = b"") -> None:
        super().__init__(reason)
        self.reason = reason
        self.response = response


class MessageTooLarge(RemoteProtocolError):
    """An incoming message is larger than the listener's ``max_package_size``."""


class SendBufferFull(GeworkerError):
    """``Connection.send`` dropped a message because the send queue is full.

    Passed to ``on_error``; the connection stays open.
    """
