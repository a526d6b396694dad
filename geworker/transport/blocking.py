"""The blocking style of client connections: ``receive()``, iteration, ``with``, waiting.

Inside a worker, callbacks are the way to use a client connection. Scripts
and tests often prefer to ask for the next message: a client connection
without an ``on_message`` callback puts what it receives in an
:class:`Inbox`, and ``receive(timeout)`` (or ``for message in conn``) takes
from it, waiting on gevent's hub, so the connection keeps reading meanwhile.

The inbox is bounded: once it holds :data:`INBOX_PAUSE` messages the
connection stops reading (``pause_recv``), so a peer that sends faster than
the script reads is held back by TCP instead of filling memory; reading
resumes when the script has taken half of them. :class:`BlockingStyle` is
the API on top of it, shared by stream and UDP clients.

All of it waits on gevent's hub, in the calling thread: a script needs no
monkey patching, and while it waits in one of these calls its connections
read, write, reconnect and run their callbacks.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import gevent
from gevent.event import Event

from ..errors import ConnectError, ConnectionClosed, LocalProtocolError

__all__ = ["INBOX_PAUSE", "BlockingStyle", "Inbox"]

_C = TypeVar("_C", bound="BlockingStyle")

#: Messages an inbox holds before its connection stops reading.
INBOX_PAUSE = 100


class Inbox:
    """Received messages waiting for ``receive()``.

    Args:
        pause / resume: stop and restart reading from the peer.
    """

    __slots__ = ("_items", "_pause", "_paused", "_ready", "_resume")

    def __init__(self, pause: Callable[[], None], resume: Callable[[], None]) -> None:
        self._items: deque[Any] = deque()
        self._ready = Event()
        self._pause = pause
        self._resume = resume
        self._paused = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, messages: list[Any]) -> None:
        """Add messages; stop reading once :data:`INBOX_PAUSE` are waiting."""
        self._items.extend(messages)
        self._ready.set()
        if not self._paused and len(self._items) >= INBOX_PAUSE:
            self._paused = True
            self._pause()

    def take_all(self) -> list[Any]:
        """Empty the inbox (the messages go elsewhere now: a pipe); reading resumes."""
        items = list(self._items)
        self._items.clear()
        if self._paused:
            self._paused = False
            self._resume()
        return items

    def get(self, timeout: float | None, ended: Event,
            closed: Callable[[], Exception]) -> Any:
        """The oldest message, waiting up to ``timeout`` seconds (None: no limit).

        Raises:
            TimeoutError: nothing arrived in time.
            Exception: ``closed()``, when ``ended`` is set and nothing is left.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        items = self._items
        while not items:
            if ended.is_set():
                raise closed()
            self._ready.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"no message within {timeout}s")
            gevent.wait([self._ready, ended], timeout=left, count=1)
        message = items.popleft()
        if self._paused and len(items) <= INBOX_PAUSE // 2:
            self._paused = False
            self._resume()
        return message


class BlockingStyle:
    """``wait_connected``, ``wait_closed``, ``receive``, iteration and ``with`` (a mixin).

    The class it is mixed into (listed before it among the bases) provides
    the attributes annotated below, ``close()`` and ``_closed_error()``.
    """

    __slots__ = ()

    _state: Any
    _ended: Event
    _opened: Event
    _inbox: Inbox
    _callbacks: dict[str, Any]
    _reader: Any
    _waiters: int
    listener: Any
    last_error: ConnectError | None

    if TYPE_CHECKING:  # (provided by the class it is mixed into, which comes first)
        def close(self, message: Any = None) -> None: ...

        def _closed_error(self) -> ConnectionClosed: ...

    def wait_connected(self: _C, timeout: float | None = None) -> _C:
        """Wait until the connection is open; returns it.

        With automatic reconnects it waits through failed attempts.

        Raises:
            ConnectError: the last attempt failed and no other follows it.
            ConnectionClosed: it closed for good without a failed attempt.
            TimeoutError: ``timeout`` seconds passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._state.is_open:
            if self._ended.is_set():
                if self.last_error is not None:
                    raise self.last_error
                raise self._closed_error()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"{self.listener.url}: not connected within {timeout}s")
            self._check_not_own_greenlet("wait_connected")
            self._waiters += 1  # (a failure someone waits for is theirs to report)
            try:
                gevent.wait([self._opened, self._ended], timeout=left, count=1)
            finally:
                self._waiters -= 1
        return self

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until it is closed with no attempt to come; False if ``timeout`` passed first."""
        if not self._ended.is_set():
            self._check_not_own_greenlet("wait_closed")
        return bool(self._ended.wait(timeout))

    def receive(self, timeout: float | None = None) -> Any:
        """The next message (for clients without ``on_message``), waiting up to ``timeout``.

        Waits through reconnects; messages received before a close are
        returned first.

        Raises:
            ConnectionClosed: it has closed for good and no message is left.
            TimeoutError: nothing arrived within ``timeout`` seconds.
            LocalProtocolError: it has an ``on_message`` callback (messages go there).
        """
        if "on_message" in self._callbacks:
            raise LocalProtocolError(f"{self.listener.url}: messages go to on_message; "
                                     "receive() is for clients without it")
        if not len(self._inbox) and not self._ended.is_set():
            self._check_not_own_greenlet("receive")
        return self._inbox.get(timeout, self._ended, self._closed_error)

    def __iter__(self) -> Iterator[Any]:
        """Every message, as :meth:`receive` returns them, until it closes for good."""
        while True:
            try:
                yield self.receive()
            except ConnectionClosed:
                return

    def __enter__(self: _C) -> _C:
        return self.wait_connected()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        self.wait_closed(self.listener.options.close_timeout + 1.0)

    def _check_not_own_greenlet(self, name: str) -> None:
        if self._reader is not None and gevent.getcurrent() is self._reader:
            raise LocalProtocolError(
                f"{name}() in a callback of {self.listener.url} would wait for that very "
                "callback to return: use on_message (or call it from another greenlet)")
