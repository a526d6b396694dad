"""Per-listener limits, declared once with their defaults, validation and docs.

A :class:`Server` holds one :class:`Options`; each listener may override any
field (``server.listen("frame://...", max_package_size=65536)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError

__all__ = ["Options", "KiB", "MiB"]

KiB = 1024
MiB = 1024 * KiB


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field with its documentation attached as metadata."""
    return field(metadata={"doc": text}, **kwargs)


@dataclass(frozen=True)
class Options:
    """Limits and behaviour of a listener. Every field has a safe default."""

    max_package_size: int = _doc(
        "Largest incoming message in bytes (frame header included). A peer that "
        "announces or sends more is disconnected with a logged reason.",
        default=10 * MiB,
    )
    max_send_buffer_size: int = _doc(
        "Bytes that may wait in a connection's send queue (data the kernel did not "
        "take at once). Past it, send() drops the message, returns False, counts a "
        "send failure and calls on_error; on_buffer_full fires when it is reached "
        "and on_buffer_drain when the queue empties.",
        default=1 * MiB,
    )
    idle_timeout: float | None = _doc(
        "Seconds a connection may stay silent before it is closed (None: never). "
        "Any received byte resets the clock.",
        default=None,
    )
    close_timeout: float = _doc(
        "Seconds close() waits for queued data to reach the peer before it drops "
        "the connection anyway.",
        default=5.0,
    )

    def __post_init__(self) -> None:
        if self.max_package_size < 1:
            raise ConfigurationError("max_package_size must be at least 1 byte")
        if self.max_send_buffer_size < 1:
            raise ConfigurationError("max_send_buffer_size must be at least 1 byte")
        if self.idle_timeout is not None and self.idle_timeout <= 0:
            raise ConfigurationError("idle_timeout must be positive or None")
        if self.close_timeout < 0:
            raise ConfigurationError("close_timeout must not be negative")

    def replace(self, **changes: Any) -> Options:
        """Return a copy with ``changes`` applied, rejecting unknown names."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigurationError(
                f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return dataclasses.replace(self, **changes)
