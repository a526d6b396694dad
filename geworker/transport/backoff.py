"""How long a client connection waits before it tries to connect again.

Pure arithmetic, no I/O: :class:`Backoff` turns "the n-th retry in a row"
into a delay, growing exponentially up to a cap, with random jitter so that
many clients cut off at once (a server restart) do not all come back in the
same millisecond.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff:
    """Automatic reconnects: exponential back-off with jitter and a cap.

    The n-th retry in a row (n = 0, 1, 2... counted since the connection
    last opened) waits ``min(max_delay, initial * factor ** n)``, shortened
    by a random fraction of up to ``jitter`` of it. So with the defaults a
    client whose server went away retries after 0.4-0.5 s, then 0.8-1 s,
    1.6-2 s..., and never waits more than 30 s.

    Args:
        initial: the first delay, in seconds (after a close, or a first
            attempt that failed).
        factor: how much each further failed attempt multiplies it by (>= 1).
        max_delay: the cap, in seconds.
        jitter: the largest fraction taken off each delay at random (0 to 1;
            0: exact delays).
        give_up_after: stop once this many attempts in a row have failed
            (None: never). ``on_error`` got each failure; the connection then
            stays ``CLOSED`` until ``reconnect()`` is called.
    """

    initial: float = 0.5
    factor: float = 2.0
    max_delay: float = 30.0
    jitter: float = 0.2
    give_up_after: int | None = None

    def __post_init__(self) -> None:
        if not self.initial >= 0:
            raise ConfigurationError("Backoff.initial must not be negative")
        if not self.factor >= 1:
            raise ConfigurationError("Backoff.factor must be at least 1")
        if not self.max_delay >= self.initial:
            raise ConfigurationError("Backoff.max_delay must be at least Backoff.initial")
        if not 0 <= self.jitter <= 1:
            raise ConfigurationError("Backoff.jitter is a fraction between 0 and 1")
        if self.give_up_after is not None and self.give_up_after < 1:
            raise ConfigurationError("Backoff.give_up_after must be at least 1, or None")

    def bound(self, retry: int) -> float:
        """The longest the ``retry``-th retry in a row (0-based) may wait."""
        # (capped before the power can overflow a float)
        if retry > 64:
            return self.max_delay
        return min(self.max_delay, self.initial * self.factor ** retry)

    def delay(self, retry: int) -> float:
        """The wait before the ``retry``-th retry in a row (0-based), jitter applied."""
        bound = self.bound(retry)
        return bound * (1.0 - self.jitter * random.random())
