"""``--user`` and ``--group`` in the master: defaults and settings that cannot work.

gunicorn's master starts as root and its workers switch to ``--user`` and
``--group`` before importing the app. geworker checks at the first start,
in the master, what would otherwise fail in every worker (or silently run
with root's group):

* ``--user`` without ``--group`` means the user's primary group, not root's;
* a master that is not root cannot switch user or group;
* the worker user must be able to read the directory the app is imported from.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import Any

from ..errors import BootError
from ..worker import _gunicorn

__all__ = ["default_group", "privilege_problem"]


def default_group(cfg: Any) -> None:
    """``--user`` without ``--group`` means the user's primary group, not root's.

    Raises:
        BootError: when the user has no passwd entry to take the group from.
    """
    if cfg.uid != os.geteuid() and _gunicorn.setting_is_default(cfg, "group"):
        try:
            cfg.set("group", pwd.getpwuid(cfg.uid).pw_gid)
        except KeyError:
            raise BootError(f"user id {cfg.uid} has no passwd entry: "
                            "pass --group explicitly") from None


def privilege_problem(cfg: Any) -> str | None:
    """Why ``--user``/``--group`` cannot work here, or None when they can."""
    if os.geteuid() == 0:
        if cfg.uid == 0:
            return None
        # Workers import the app after switching user: fail now, with the reason,
        # rather than in every worker.
        where = _unreadable_by(Path(cfg.chdir or os.getcwd()), cfg.uid, cfg.gid)
        if where is not None:
            return (f"--user {cfg.uid} (group {cfg.gid}) cannot read {where}, where the app "
                    "is imported from: make it readable by that user")
        return None
    if cfg.uid != os.geteuid():
        return (f"--user {cfg.uid} needs the master to run as root (it runs as uid "
                f"{os.geteuid()}); drop --user or start as root")
    if cfg.gid != os.getegid():
        return (f"--group {cfg.gid} needs the master to run as root (it runs as gid "
                f"{os.getegid()}); drop --group or start as root")
    return None


def _unreadable_by(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on ``path`` that ``uid``/``gid`` cannot list, if any."""
    for part in [*reversed(path.absolute().parents), path.absolute()]:
        try:
            st = part.stat()
        except OSError:
            return part
        if st.st_uid == uid:
            bits = st.st_mode >> 6
        elif st.st_gid == gid:
            bits = st.st_mode >> 3
        else:
            bits = st.st_mode
        if bits & 0o5 != 0o5:  # read + search
            return part
    return None
