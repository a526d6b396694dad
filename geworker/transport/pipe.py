"""``conn.pipe(dest)``: every message of one connection forwarded to another, with flow control.

Workerman's ``pipe``, and a TCP proxy in a few lines::

    @server.on_connect
    def proxy(conn):
        upstream = geworker.connect("tcp://10.0.0.2:9000")
        conn.pipe(upstream)
        upstream.pipe(conn)

A pipe gives both connections callbacks of their own (the server's stay as
they are for its other connections):

* the source's messages go to ``dest.send`` instead of ``on_message``
  (``dest`` encodes them with its own protocol: bytes pass through as they
  are between ``tcp://`` connections);
* when ``dest``'s send queue is full (``on_buffer_full``) the source stops
  reading; when it drains (``on_buffer_drain``) the source reads again. So a
  destination that reads slowly holds the source back through TCP instead
  of filling the proxy's memory. Messages of a batch already received when
  the queue filled up are held by the pipe (one read's worth at most) and
  sent first when it drains: nothing is dropped;
* what a client source received before the pipe (waiting for ``receive()``)
  goes first;
* a destination that is still connecting (a fresh ``geworker.connect``)
  holds the source back the same way until it opens; if it never does, the
  source is closed;
* when either side closes, the other is closed, after what it has queued is
  flushed (``close_timeout``). A piped client connection does not reconnect.

The user's own ``on_close``, ``on_buffer_full`` and ``on_buffer_drain`` still
run, before the pipe's.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gevent

from .state import ConnectionState

__all__ = ["pipe"]

_CONNECTING = ConnectionState.CONNECTING


def pipe(source: Any, dest: Any) -> None:
    """Forward ``source``'s messages to ``dest`` (see the module documentation)."""
    _Pipe(source, dest)


def _hook(conn: Any, name: str, func: Any, replace: bool = False) -> None:
    """Run ``func`` for ``conn``'s ``name`` event: instead of, or after, the callback it had."""
    callbacks = dict(conn._callbacks)
    previous = None if replace else callbacks.get(name)
    if previous is None:
        callbacks[name] = func
    else:
        def both(c: Any, _first: Any = previous, _then: Any = func) -> None:
            try:
                _first(c)
            finally:
                _then(c)

        both.__name__ = getattr(previous, "__name__", name)
        callbacks[name] = both
    conn._use_callbacks(callbacks)


class _Pipe:
    """One direction: ``source`` -> ``dest``."""

    __slots__ = ("dest", "held", "source", "source_closed")

    def __init__(self, source: Any, dest: Any) -> None:
        self.source = source
        self.dest = dest
        self.held: deque[Any] = deque()
        self.source_closed = False
        _hook(source, "on_message", self._forward, replace=True)
        if hasattr(source, "upgraded"):  # a WebSocket: its messages may go to either name
            _hook(source, "on_websocket_message", self._forward, replace=True)
        _hook(source, "on_close", self._source_closed)
        _hook(dest, "on_buffer_full", self._dest_full)
        _hook(dest, "on_buffer_drain", self._dest_drained)
        _hook(dest, "on_close", self._dest_closed)
        inbox = getattr(source, "_inbox", None)
        if inbox is not None and len(inbox):  # received before the pipe: they go first
            self.held.extend(inbox.take_all())
            source.pause_recv()
        state = dest.state
        if state is _CONNECTING or (not state.is_open and getattr(dest, "reconnect_pending",
                                                                   False)):
            source.pause_recv()
            gevent.spawn(self._await_dest)
        elif not state.is_open:
            source.close()
        elif self.held:
            self._release()

    def _full(self) -> bool:
        dest = self.dest
        return (not dest.state.is_open
                or getattr(dest, "send_queue_size", 0) >= getattr(dest, "max_send_buffer_size",
                                                                  1 << 62))

    def _forward(self, _source: Any, message: Any) -> None:
        if self.held or self._full():
            self.held.append(message)
            self.source.pause_recv()
            return
        self.dest.send(message)  # reaching the limit runs on_buffer_full: the source pauses

    def _dest_full(self, _dest: Any) -> None:
        self.source.pause_recv()

    def _dest_drained(self, _dest: Any) -> None:
        self._release()

    def _release(self) -> None:
        """Send what was held while ``dest`` could not take it; then read again (or close)."""
        held, dest = self.held, self.dest
        while held and not self._full():
            dest.send(held.popleft())
        if held:
            return  # the next on_buffer_drain carries on
        if self.source_closed:
            dest.close()
        else:
            self.source.resume_recv()

    def _await_dest(self) -> None:
        try:
            self.dest.wait_connected()
        except Exception:  # it will not open (ConnectError, ConnectionClosed): give up
            self.held.clear()
            self.source.close()
            return
        self._release()

    def _source_closed(self, source: Any) -> None:
        self.source_closed = True
        _no_reconnect(source)
        if not self.held:
            self.dest.close()
        else:  # flushed when dest drains; after close_timeout, closed anyway
            timeout = source.listener.options.close_timeout
            gevent.spawn_later(timeout, self.dest.close)

    def _dest_closed(self, dest: Any) -> None:
        self.held.clear()
        _no_reconnect(dest)
        self.source.close()


def _no_reconnect(conn: Any) -> None:
    cancel = getattr(conn, "cancel_reconnect", None)
    if cancel is not None:
        cancel()
