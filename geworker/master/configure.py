"""What geworker does inside gunicorn's master process.

The master never imports the application. When gunicorn resolves the worker
class (``Worker.setup()``, at start and again on every ``HUP``) geworker:

1. probes the app in a subprocess for its declared listeners;
2. at start, sets gunicorn's ``bind`` to the declared stream listeners (an
   explicit ``--bind`` that disagrees fails the boot with exit code 3) and
   binds the UDP listeners itself, so every worker, including those started
   after a reload, inherits the same sockets;
3. on reload, keeps the binds unchanged (gunicorn's master dies if they
   change under running workers) and warns when the app now declares others;
4. defaults ``--group`` to the ``--user``'s primary group;
5. bumps a reload generation shared with the workers, so an old worker told
   to stop can tell a reload from a shutdown (and marks the shared memory
   when the master itself stops).

Then it prepares the run directory, named for the app and its listeners,
and moves gunicorn's default control socket into it
(:mod:`~geworker.master.record`), checks
``--user``/``--group`` (:mod:`~geworker.master.privileges`), starts the
optional metrics server (:mod:`~geworker.master.metrics`) and chains its
hooks (:mod:`~geworker.master.hooks`). What the workers inherit (shared
memory, worker indexes, UDP sockets) is in :mod:`geworker.worker.shared`.

A problem that stops the start raises :class:`~geworker.errors.BootError`
where it is found; :func:`setup_from_gunicorn`, the master's one entry point,
prints it as one line and exits with code 3.
"""

from __future__ import annotations

import os
import shlex
import socket
import sys
from dataclasses import dataclass, field
from typing import Any

from .. import rundir
from ..errors import BootError
from ..worker import _gunicorn, shared
from . import banner, hooks, metrics, ports, privileges, record
from .probe import TRACEBACK_ENV, ProbeError, probe_app

__all__ = ["app_uri", "configure", "setup_from_gunicorn"]

#: SO_RCVBUF asked for master-bound UDP sockets (the kernel caps it at net.core.rmem_max).
DATAGRAM_RECV_BUFFER = 4 * 1024 * 1024

PRELOAD_REFUSED = ("--preload imports the app in the master, before gevent's "
                   "monkey patching and outside reloads; run without it")


@dataclass
class _MasterState:
    configured: bool = False
    binds: list[str] | None = None
    declared: dict[str, Any] = field(default_factory=dict)


_state = _MasterState()


def setup_from_gunicorn() -> None:
    """The master's entry point, from ``Worker.setup()`` (at start and on every reload).

    Finds the calling gunicorn config and applies :func:`configure` to it; a
    :class:`~geworker.errors.BootError` becomes one clear line on stderr and
    exit code 3, so gunicorn stops instead of starting workers.
    """
    cfg = _gunicorn.calling_config()
    if cfg is None:
        return
    try:
        configure(cfg)
    except BootError as exc:
        print(f"\ngeworker: {exc}\n", file=sys.stderr, flush=True)
        sys.exit(BootError.exit_code)


def app_uri(cfg: Any) -> str | None:
    """The ``module:object`` gunicorn was asked to load."""
    if cfg.default_proc_name and cfg.default_proc_name != "gunicorn":
        return str(cfg.default_proc_name)
    return cfg.wsgi_app  # type: ignore[no-any-return]


def _bind_is_explicit(cfg: Any) -> bool:
    if not _gunicorn.setting_is_default(cfg, "bind"):
        return True
    words = sys.argv[1:] + shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))
    return any(w in ("-b", "--bind") or w.startswith(("--bind=", "-b")) for w in words)


def configure(cfg: Any) -> None:
    """Apply the declared listeners and defaults to gunicorn's config (see module doc).

    Raises:
        BootError: the instance cannot start as configured.
    """
    if cfg.preload_app:
        raise BootError(PRELOAD_REFUSED)
    uri = app_uri(cfg)
    if uri is None:
        return  # nothing to probe; the worker reports what is wrong
    try:
        environ = dict(os.environ)
        if str(cfg.loglevel).lower() == "debug":
            environ[TRACEBACK_ENV] = "1"
        declared = probe_app(uri, pythonpath=_pythonpath(cfg), environ=environ)
    except ProbeError as exc:
        if not _state.configured:
            raise BootError(str(exc)) from None
        print(f"geworker: reloading anyway, the app failed its check: {exc}", file=sys.stderr)
        declared = _state.declared
    first = not _state.configured
    if first:
        _first_configure(cfg, declared)
    else:
        shared.bump_generation()
        new_binds = [d["bind"] for d in declared["listeners"] if d["transport"] != "udp"]
        if declared.get("kind") == "server" and new_binds != _state.binds:
            print("geworker: the app now declares different listeners "
                  f"({new_binds} instead of {_state.binds}); a reload keeps the old ones, "
                  "restart to apply the change", file=sys.stderr, flush=True)
        if _state.binds is not None:
            cfg.set("bind", list(_state.binds))
    privileges.default_group(cfg)
    if first:
        problem = privileges.privilege_problem(cfg)
        if problem:
            raise BootError(problem)
        # run dir and exit counts (geworker status)
        record.prepare_run_dir(cfg, uri, _state.declared,
                               lambda msg: print(msg, file=sys.stderr, flush=True))
    else:
        record.record_reload(cfg)
        record.place_control_socket(cfg)  # the reload re-read gunicorn's default
    metrics.setup(cfg, rundir.run_dir())
    hooks.install(cfg)


def _first_configure(cfg: Any, declared: dict[str, Any]) -> None:
    _state.configured = True
    _state.declared = declared
    _gunicorn.install_halt_once(cfg)
    _gunicorn.install_stop_notice(cfg, shared.mark_master_stopping)
    if declared["kind"] != "server":
        return  # a plain WSGI app: gunicorn's --bind rules apply
    listeners = declared["listeners"]
    binds = [d["bind"] for d in listeners if d["transport"] != "udp"]
    if _bind_is_explicit(cfg):
        given = list(cfg.bind)
        missing = [b for b in binds if b not in given]
        extra = [b for b in given if b not in binds]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"--bind lacks the declared address(es) {', '.join(missing)}")
            if extra:
                parts.append(f"--bind adds {', '.join(extra)}, which the app does not declare")
            raise BootError("; ".join(parts)
                            + ". Addresses are declared in the app: drop --bind.")
    busy = ports.busy_listeners(listeners)
    if busy:
        raise BootError("; ".join(busy) + " (set GEWORKER_BIND_RETRY=1 to let gunicorn retry)")
    _state.binds = binds
    cfg.set("bind", list(binds))
    banner.install([d["url"] for d in listeners])
    for d in listeners:
        if d["transport"] == "udp":
            shared.add_datagram_socket(d["bind"], _bind_datagram(d))


def _bind_datagram(description: dict[str, Any]) -> socket.socket:
    host, _, port = description["bind"].rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Datagrams queue here while no worker reads (old ones stopped, new ones
    # booting, on HUP): the default ~200 KiB overflows in well under a second.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, DATAGRAM_RECV_BUFFER)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        raise BootError(f"cannot bind {description['url']}: {exc}") from None
    sock.setblocking(False)
    return sock


def _pythonpath(cfg: Any) -> list[str]:
    paths = [p.strip() for p in (cfg.pythonpath or "").split(",") if p.strip()]
    return [cfg.chdir, *paths] if cfg.chdir else paths
