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
   to stop can tell a reload from a shutdown.

It also gives each worker a stable index 0..N-1 (``Worker.index``).
"""

from __future__ import annotations

import mmap
import os
import pwd
import shlex
import socket
import sys
import weakref
from dataclasses import dataclass, field
from typing import Any

from ..ops import metrics, status
from .probe import ProbeError, probe_app

__all__ = ["EXIT_BOOT_ERROR", "assign_index", "configure", "datagram_socket", "reload_generation"]

#: Worker indexes that get a connection-count slot in shared memory.
WORKER_SLOTS = 1024
#: Where the connection-count slots start in the shared memory.
SLOTS_OFFSET = 16

#: gunicorn's "worker failed to boot" code: the master halts instead of respawning.
EXIT_BOOT_ERROR = 3

#: SO_RCVBUF asked for master-bound UDP sockets (the kernel caps it at net.core.rmem_max).
DATAGRAM_RECV_BUFFER = 4 * 1024 * 1024


@dataclass
class _MasterState:
    configured: bool = False
    binds: list[str] | None = None
    declared: dict[str, Any] = field(default_factory=dict)
    datagram_sockets: dict[str, socket.socket] = field(default_factory=dict)
    generation: int = 0
    indexes: dict[int, tuple[int, Any]] = field(default_factory=dict)
    # Mapped before any fork, so the master and every worker see the same bytes:
    # the reload generation, the newest generation with a worker serving, then
    # one connection-count slot per worker index (see SLOTS_OFFSET).
    shared: mmap.mmap = field(
        default_factory=lambda: mmap.mmap(-1, SLOTS_OFFSET + 8 * WORKER_SLOTS))


_state = _MasterState()


def fail_boot(message: str) -> None:
    """Stop gunicorn's start with a clear reason and exit code 3."""
    print(f"\ngeworker: {message}\n", file=sys.stderr, flush=True)
    sys.exit(EXIT_BOOT_ERROR)


def app_uri(cfg: Any) -> str | None:
    """The ``module:object`` gunicorn was asked to load."""
    if cfg.default_proc_name and cfg.default_proc_name != "gunicorn":
        return str(cfg.default_proc_name)
    return cfg.wsgi_app  # type: ignore[no-any-return]


def _bind_is_explicit(cfg: Any) -> bool:
    setting = cfg.settings["bind"]
    if setting.value != setting.default:
        return True
    words = sys.argv[1:] + shlex.split(os.environ.get("GUNICORN_CMD_ARGS", ""))
    return any(w in ("-b", "--bind") or w.startswith(("--bind=", "-b")) for w in words)


def configure(cfg: Any) -> None:
    """Apply the declared listeners and defaults to gunicorn's config (see module doc)."""
    uri = app_uri(cfg)
    if uri is None or cfg.preload_app:
        return  # nothing to probe; the worker reports what is wrong
    try:
        declared = probe_app(uri, pythonpath=_pythonpath(cfg))
    except ProbeError as exc:
        if not _state.configured:
            fail_boot(str(exc))
        print(f"geworker: reloading anyway, the app failed its check: {exc}", file=sys.stderr)
        declared = _state.declared
    if not _state.configured:
        _first_configure(cfg, declared)
    else:
        _bump_generation()
        new_binds = [d["bind"] for d in declared["listeners"] if d["transport"] != "udp"]
        if declared.get("kind") == "server" and new_binds != _state.binds:
            print("geworker: the app now declares different listeners "
                  f"({new_binds} instead of {_state.binds}); a reload keeps the old ones, "
                  "restart to apply the change", file=sys.stderr, flush=True)
        if _state.binds is not None:
            cfg.set("bind", list(_state.binds))
    _default_group(cfg)
    status.setup_master(cfg, uri, _state.declared)  # run dir, exit counts (geworker status)
    metrics.setup_master(cfg, status.run_dir())


def _first_configure(cfg: Any, declared: dict[str, Any]) -> None:
    _state.configured = True
    _state.declared = declared
    _halt_once(cfg)
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
            fail_boot("; ".join(parts) + ". Addresses are declared in the app: drop --bind.")
    _state.binds = binds
    cfg.set("bind", list(binds))
    for d in listeners:
        if d["transport"] == "udp":
            _state.datagram_sockets[d["bind"]] = _bind_datagram(d)


def _halt_once(cfg: Any) -> None:
    """Make gunicorn's halt survive a second worker failing to boot.

    When several workers fail to boot at once (an ``on_worker_start`` that
    raises), gunicorn 27's master starts halting for the first, reaps the
    second while stopping, raises ``HaltServer`` again from inside ``halt()``
    and dies with a traceback and exit code 1 instead of 3. Once the master
    is halting, further ``HaltServer`` from reaping are moot: drop them.
    """
    from gunicorn.errors import HaltServer

    user_on_starting = cfg.settings["on_starting"].get()

    def on_starting(arbiter: Any) -> None:
        halt, reap = arbiter.halt, arbiter.reap_workers
        halting = []

        def halt_once(reason: Any = None, exit_status: int = 0) -> None:
            halting.append(reason)
            halt(reason, exit_status)

        def reap_workers() -> None:
            try:
                reap()
            except HaltServer:
                if not halting:
                    raise

        arbiter.halt, arbiter.reap_workers = halt_once, reap_workers
        user_on_starting(arbiter)

    cfg.set("on_starting", on_starting)


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
        fail_boot(f"cannot bind {description['url']}: {exc}")
    sock.setblocking(False)
    return sock


def _pythonpath(cfg: Any) -> list[str]:
    paths = [p.strip() for p in (cfg.pythonpath or "").split(",") if p.strip()]
    return [cfg.chdir, *paths] if cfg.chdir else paths


def _default_group(cfg: Any) -> None:
    """``--user`` without ``--group`` means the user's primary group, not root's."""
    group = cfg.settings["group"]
    if cfg.uid != os.geteuid() and group.value == group.default:
        try:
            cfg.set("group", pwd.getpwuid(cfg.uid).pw_gid)
        except KeyError:
            fail_boot(f"user id {cfg.uid} has no passwd entry: pass --group explicitly")


def _bump_generation() -> None:
    _state.generation += 1
    _state.shared[:8] = _state.generation.to_bytes(8, "little")


def reload_generation() -> int:
    """The number of reloads the master has started (readable from workers)."""
    return int.from_bytes(_state.shared[:8], "little")


def mark_serving(generation: int) -> None:
    """Record, from a worker, that a worker of ``generation`` is serving."""
    if generation > serving_generation():
        _state.shared[8:16] = generation.to_bytes(8, "little")


def serving_generation() -> int:
    """The newest generation that has a worker serving."""
    return int.from_bytes(_state.shared[8:16], "little")


def shared_memory() -> mmap.mmap:
    """The memory shared by the master and all workers (see ``_MasterState.shared``)."""
    return _state.shared


def assign_index(worker: Any) -> tuple[int, int]:
    """Give a new worker the lowest index no live worker of this generation holds.

    Returns ``(index, generation)``. Runs in the master before the fork; a
    worker that died (or an old one being replaced by a reload) frees its index.
    """
    generation = _state.generation
    taken = {i for i, (gen, ref) in _state.indexes.items()
             if gen == generation and ref() is not None}
    index = 0
    while index in taken:
        index += 1
    _state.indexes[index] = (generation, weakref.ref(worker))
    return index, generation


def datagram_socket(bind: str) -> socket.socket | None:
    """The UDP socket the master bound for ``bind``, if any."""
    return _state.datagram_sockets.get(bind)
