"""The h11 engine geworker parses with: ``h11_mypyc`` when installed, else ``h11``.

``h11-mypyc`` (the extra ``geworker[fast]``) is a compiled build of h11 with
the same API, about 2.5x faster. Everything that builds or parses h11 events
imports ``h11`` from here, so one process never mixes the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import h11 as h11
else:
    try:
        import h11_mypyc as h11
    except ImportError:
        import h11

__all__ = ["H11_ENGINE", "h11"]

#: The module parsing what the fast parser leaves: ``"h11"`` or ``"h11_mypyc"``.
H11_ENGINE: str = h11.__name__
