"""The lifecycle of a stream connection: its states and the moves allowed between them.

::

    OPEN <-> PARKED            served by a greenlet / waiting for input without one
      |        |
      +--------+--> CLOSING --> CLOSED      flushing and shutting / closed, on_close has run
      |
      +--> HANDED_OFF                       the socket now belongs to another connection

:data:`TRANSITIONS` is the whole table; :meth:`Connection._transition
<geworker.transport.connection.Connection._transition>` is the one place that
moves a connection along it and refuses any other move. Entering ``CLOSED``
is what runs ``on_close``, and only ``CLOSING`` leads there, once; a
connection handed off (a protocol upgrade) ends in ``HANDED_OFF`` and never
runs it. A parked connection is as open as an awake one: it sends, receives
broadcasts and closes, so code that asks "can I still send?" tests
:attr:`ConnectionState.is_open`, not ``is ConnectionState.OPEN``.

A client connection (``geworker.connect``) follows :data:`CLIENT_TRANSITIONS`:
the same moves, plus ``CONNECTING`` before ``OPEN`` and the way back from
``CLOSED`` when it reconnects::

    CONNECTING --> OPEN ... CLOSING --> CLOSED --> CONNECTING   (a reconnect)
        |                                 ^
        +---------------------------------+   the attempt failed: no on_close

``on_close`` still runs only on ``CLOSING`` -> ``CLOSED``, once per connection
that opened; an attempt that fails goes straight from ``CONNECTING`` to
``CLOSED`` without it (its error goes to ``on_error``).

What the serving greenlet is doing at a given moment (waiting in ``recv``,
running ``on_message``) and the send side's condition (queued, over the
buffer limit) are not lifecycle states: they change on every message and
stay flags on the connection (documented there).
"""

from __future__ import annotations

import enum

__all__ = ["CLIENT_TRANSITIONS", "TRANSITIONS", "ConnectionState"]


class ConnectionState(enum.Enum):
    """Where a connection is in its life (see :data:`TRANSITIONS` for the order).

    The values are what ``geworker connections`` shows: ``ESTABLISHED``,
    ``CLOSING`` and ``CLOSED`` are named after the TCP states they match.
    """

    #: Served by a greenlet: reading, or running callbacks.
    OPEN = "ESTABLISHED"
    #: Open, silent for ``park_after``: a read watcher instead of a greenlet waits for input.
    PARKED = "PARKED"
    #: No more input is read; what is queued is being flushed, then the socket is closed.
    CLOSING = "CLOSING"
    #: The socket is closed and ``on_close`` has run.
    CLOSED = "CLOSED"
    #: The socket was given to another connection (a protocol upgrade); no ``on_close`` here.
    HANDED_OFF = "HANDED_OFF"
    #: A client connection being established (DNS, TCP, proxy, TLS, WebSocket handshake).
    CONNECTING = "CONNECTING"

    def __init__(self, value: str) -> None:
        #: True in the states where ``send`` and ``close`` still act (OPEN, PARKED).
        self.is_open = value in ("ESTABLISHED", "PARKED")


_S = ConnectionState

#: Every move a connection may make; anything else is refused.
TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    _S.OPEN: frozenset({_S.PARKED, _S.CLOSING, _S.HANDED_OFF}),
    _S.PARKED: frozenset({_S.OPEN, _S.CLOSING}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
    _S.HANDED_OFF: frozenset(),
    _S.CONNECTING: frozenset(),
}

#: The moves of a client connection: the server's, plus connecting and reconnecting.
CLIENT_TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    **TRANSITIONS,
    _S.CONNECTING: frozenset({_S.OPEN, _S.CLOSED}),
    _S.CLOSED: frozenset({_S.CONNECTING}),
}
