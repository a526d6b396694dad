"""Every use geworker makes of gunicorn beyond its documented contract, in one file.

The documented parts (``gunicorn.workers.base.Worker``, the server hooks,
``Config.set``) are used where they belong. What follows leans on gunicorn
internals; each piece names what it relies on, and the canary tests in
``tests/unit/worker/test_gunicorn_compat.py`` check all of it against the
installed gunicorn (``pyproject.toml`` bounds it to the tested major, 27):

* :func:`calling_config`: ``Worker.setup()`` is called without arguments,
  from the ``Config.worker_class`` property: the config is that frame's ``self``.
* :func:`master_signal_queue`: the arbiter's ``SIG_QUEUE``, reached through
  the SIGTERM handler it installs (its bound ``Arbiter.signal``).
* :func:`caller_wait_status`: the ``status`` local of ``Arbiter.reap_workers``,
  the ``waitpid`` status it does not pass to ``child_exit``.
* :func:`install_halt_once`: replaces ``arbiter.halt`` and
  ``arbiter.reap_workers`` (``HaltServer`` raised while halting).
* :func:`install_stop_notice`: replaces ``arbiter.stop``, which every
  shutdown goes through (``halt()``, ``INT``, ``QUIT``) and a reload never.
* :func:`spawn_extra_worker`, :func:`arbiter_workers` and
  :func:`target_workers`: ``Arbiter.spawn_worker()``, ``WORKERS`` (from
  which ``reap_workers`` pops a worker before ``child_exit``) and
  ``num_workers``; ``manage_workers`` spawns only while ``WORKERS`` holds
  fewer than ``num_workers``, old workers that still run included.
* :func:`chain_hook`, :func:`setting_is_default` and :func:`setting_default`:
  ``cfg.settings[name]`` with its ``get()``, ``value`` and ``default``.
* that the arbiter reads ``cfg.control_socket`` when it starts its control
  server, after ``setup()`` (the master moves the default socket there).

It lives in the worker layer, the lowest that uses gunicorn, so that both
the worker and the master (above it) can import it.
"""

from __future__ import annotations

import functools
import queue
import signal
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["arbiter_workers", "caller_wait_status", "calling_config", "chain_hook",
           "install_halt_once", "install_stop_notice", "master_signal_queue", "setting_default",
           "setting_is_default", "spawn_extra_worker", "target_workers"]

#: The attribute of a chained hook that holds geworker's functions.
_CHAIN = "_geworker_hooks"


def calling_config() -> Any:
    """The gunicorn ``Config`` whose ``worker_class`` property is calling ``setup()``.

    gunicorn calls ``setup()`` without arguments, from that property, in the
    master, at start and on every reload: the one moment geworker can adjust
    the config before gunicorn binds. None when no such frame is found.
    """
    from gunicorn.config import Config

    frame = sys._getframe(1)
    while frame is not None:
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, Config):
            return candidate
        frame = frame.f_back  # type: ignore[assignment]
    return None


def master_signal_queue() -> Any:
    """gunicorn's master signal queue (copied into each child by the fork).

    Read through the master's installed handler, a bound method of the arbiter;
    an empty queue when there is none (not under gunicorn's master).
    """
    handler = signal.getsignal(signal.SIGTERM)
    arbiter = getattr(handler, "__self__", None)
    return getattr(arbiter, "SIG_QUEUE", None) or queue.SimpleQueue()


def caller_wait_status() -> int | None:
    """The ``waitpid`` status gunicorn's ``reap_workers`` just got (from ``child_exit``).

    gunicorn hands ``child_exit`` the worker but not its exit status; the
    status is a local of the calling ``Arbiter.reap_workers`` frame.
    """
    frame = sys._getframe(1)
    for _ in range(8):
        if frame is None:
            break
        if frame.f_code.co_name == "reap_workers" and "status" in frame.f_locals:
            value = frame.f_locals["status"]
            return value if isinstance(value, int) else None
        frame = frame.f_back  # type: ignore[assignment]
    return None


def chain_hook(cfg: Any, name: str, func: Callable[..., Any]) -> None:
    """Run ``func`` before the user's gunicorn server hook ``name``.

    The setting is wrapped once: every geworker function for that hook runs
    in the order chained, then the user's hook. Chaining the same function
    again does nothing, so this can run on every configure; a reload (``HUP``)
    re-reads the config, which resets the hooks to the user's, and they are
    chained afresh. ``func`` gets the hook's arguments; exceptions propagate
    (a function that must not take the master down catches its own).
    """
    current = cfg.settings[name].get()
    funcs: list[Callable[..., Any]] | None = getattr(current, _CHAIN, None)
    if funcs is None:
        user = current
        chained: list[Callable[..., Any]] = []

        # wraps(): gunicorn checks the hook's arity through __wrapped__'s signature.
        @functools.wraps(user)
        def hook(*args: Any) -> Any:
            for f in chained:
                f(*args)
            return user(*args)

        setattr(hook, _CHAIN, chained)
        cfg.set(name, hook)
        funcs = chained
    if func not in funcs:
        funcs.append(func)


def setting_is_default(cfg: Any, name: str) -> bool:
    """True when gunicorn's setting ``name`` still has its default value."""
    setting = cfg.settings[name]
    return bool(setting.value == setting.default)


def install_halt_once(cfg: Any) -> None:
    """Make gunicorn's halt survive a second worker failing to boot.

    When several workers fail to boot at once (an ``on_worker_start`` that
    raises), gunicorn 27's master starts halting for the first, reaps the
    second while stopping, raises ``HaltServer`` again from inside ``halt()``
    and dies with a traceback and exit code 1 instead of 3. Once the master
    is halting, further ``HaltServer`` from reaping are moot: drop them.
    Installed from ``on_starting``, when the arbiter exists.
    """
    chain_hook(cfg, "on_starting", _halt_once)


def _halt_once(arbiter: Any) -> None:
    from gunicorn.errors import HaltServer

    halt, reap = arbiter.halt, arbiter.reap_workers
    halting = []

    def halt_once(reason: Any = None, exit_status: int = 0) -> None:
        halting.append(reason)
        halt(reason, exit_status)

    def reap_unless_halting() -> None:
        try:
            reap()
        except HaltServer:
            if not halting:
                raise

    arbiter.halt, arbiter.reap_workers = halt_once, reap_unless_halting


def install_stop_notice(cfg: Any, notice: Callable[[], None]) -> None:
    """Call ``notice()`` in the master when it starts shutting down, before it signals workers.

    gunicorn's graceful stop sends workers the same ``TERM`` as a reload
    does; the notice lets them tell the two apart. Installed from
    ``on_starting``, when the arbiter exists.
    """
    def install(arbiter: Any) -> None:
        stop = arbiter.stop

        def stop_with_notice(graceful: bool = True) -> None:
            notice()
            stop(graceful)

        arbiter.stop = stop_with_notice

    chain_hook(cfg, "on_starting", install)


def arbiter_workers(arbiter: Any) -> list[Any]:
    """The workers the master runs (old ones still stopping included), as its objects."""
    return list(arbiter.WORKERS.values())


def target_workers(arbiter: Any) -> int:
    """How many workers the master keeps (``-w``, changed by ``TTIN``/``TTOU``)."""
    return int(arbiter.num_workers)


def spawn_extra_worker(arbiter: Any) -> int:
    """Fork one more worker now, as ``manage_workers`` would; returns its pid (master side).

    Safe from ``child_exit``: gunicorn has already dropped the reaped worker
    from ``WORKERS``, and the new worker runs its whole life inside this
    call in the child process, then exits.
    """
    return int(arbiter.spawn_worker())


def setting_default(cfg: Any, name: str) -> Any:
    """gunicorn's default value of setting ``name`` (computed when gunicorn was imported)."""
    return cfg.settings[name].default
