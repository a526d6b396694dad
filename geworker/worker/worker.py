"""``geworker.Worker``: the gunicorn worker class that runs a geworker server.

It follows gunicorn's worker contract (``gunicorn.workers.base.Worker``):
monkey-patch and re-initialise the hub in :meth:`init_process`, load the app
before ``booted`` is set, heartbeat with ``notify()``, and drain within
``graceful_timeout`` when told to stop. Signal handlers only set state.

A worker that fails to boot at the very first start halts gunicorn (exit
code 3) instead of crash-looping; once the instance has been up, it exits
to be retried with a back-off instead (:mod:`geworker.worker.bootretry`).

Stop sequence (``TERM``, and ``HUP`` for the old workers): on a reload, keep
serving until a worker of a newer generation serves; then stop accepting,
call ``on_worker_reload``/``on_worker_stop``, cancel timers, ask every
connection to drain (idle ones close now, busy ones after their current
message), wait up to ``graceful_timeout``, then kill what is left; every
connection still gets its ``on_close``. ``QUIT``/``INT`` skip the waits.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import queue
import signal
import socket
import sys
import time
from functools import partial
from typing import Any

from gunicorn.util import parse_address
from gunicorn.workers import base

from .. import rundir, timers
from ..errors import ConfigurationError
from ..listener import Listener
from ..loader import load_app, servers_of
from ..server import App, Server
from ..stats import counters
from ..transport import _gevent, heartbeat
from ..transport.membership import membership
from ..transport.runtime import ServerRuntime, runtime_of
from ..transport.tls import harden, tls_handshake, weaknesses
from . import _gunicorn, bootretry, limits, shared
from .balance import Balancer
from .snapshot import SnapshotWriter

__all__ = ["Worker"]

PARK_SWEEP = 0.25  # seconds between sweeps for connections to park
PARK_LIMIT = 250  # connections parked per sweep at most (each holds the hub ~40 us)
ACCEPT_PAUSE = 0.1  # seconds accepting pauses when accept() finds no free descriptor
EXHAUSTED_LOG_EVERY = 10.0  # seconds between two log lines about it
DATAGRAM_HANDLERS = 256  # datagrams handled at once per worker, across its UDP listeners
PARK_AGAIN = 0.005  # seconds to the next sweep when one reached PARK_LIMIT
TRIM_AFTER = 1000  # once a wave of this many has parked, give the freed memory back


class Worker(base.Worker):  # type: ignore[misc]
    """Serve a :class:`geworker.Server` in a gunicorn worker process.

    Attributes:
        index: a stable number 0..N-1 among the current workers; a worker
            that replaces a dead one (or a previous generation, after a
            reload) reuses a free index. Use it to run a job in one worker.
        server: the application's :class:`~geworker.Server`.
    """

    @classmethod
    def setup(cls) -> None:
        """Called by gunicorn in the master when it loads the worker class.

        Hands over to the master side (``geworker.master.configure``), named by
        dotted path: the worker layer does not import the master, which sits above it.
        """
        importlib.import_module("geworker.master.configure").setup_from_gunicorn()

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """Warn about settings that work badly with geworker.

        ``--preload`` is refused earlier, by :meth:`setup` (gunicorn runs it first).
        """
        if cfg.reuse_port:
            log.warning("geworker: --reuse-port gives each worker its own socket; "
                        "connections queued on a stopping worker are reset on reload")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index, self.generation = shared.assign_index(self)
        # Signals the master queues after this point, but before the fork,
        # were sent to the new worker (see _catch_early_stop).
        self._master_queue_at_fork = _gunicorn.master_signal_queue().qsize()
        self.server: Server | None = None
        self.runtimes: list[ServerRuntime] = []  # one per server, once the app is loaded
        #: The connection cap (see geworker.worker.limits); final once the process runs.
        self.worker_connections: int = self.cfg.worker_connections
        self._at_cap = False
        self._exhausted_logged = -EXHAUSTED_LOG_EVERY
        #: (gevent socket, gunicorn's address) for each socket gunicorn bound.
        self.bound: list[tuple[Any, Any]] = []
        #: (socket, listener, its server) for every listener served, UDP included.
        self.bindings: list[tuple[Any, Listener, Server]] = []
        self.servers: list[Server] = []
        self.stream_servers: list[Any] = []
        self.datagram_servers: list[Any] = []
        self.quick_exit = False
        #: True while an old worker of a reload keeps serving for the new generation.
        self.holding = False
        self._serving = False
        self._boot_stage = "booting"
        self._stop_event: Any = None
        self.snapshots: SnapshotWriter | None = None
        self.messenger: Any = None

    # -- gunicorn contract ------------------------------------------------

    def init_process(self) -> None:
        """Patch the process for gevent, then let gunicorn boot the worker and run it.

        A failure before the worker serves halts gunicorn at the very first
        start; once the instance has been up, the worker exits to be retried
        (:meth:`_boot_failed`).
        """
        try:
            self._boot_and_run()
        except Exception as exc:
            if self._serving or not shared.instance_up():
                raise
            self._boot_failed(exc)

    def _boot_and_run(self) -> None:
        from gevent import hub, monkey

        self._catch_early_stop()
        monkey.patch_all()
        import gevent.socket

        sockets = []
        for lnr in self.sockets:
            address = lnr.cfg_addr
            fileno = lnr.sock.detach()
            gsock = gevent.socket.socket(lnr.FAMILY, socket.SOCK_STREAM, fileno=fileno)
            sockets.append(gsock)
            self.bound.append((gsock, address))
        self.sockets: list[Any] = sockets
        hub.reinit()
        membership.new_node()  # client ids name this process, not the master
        open_files = limits.raise_open_files_limit()
        self.worker_connections, lowered = limits.connection_limit(
            self.cfg.worker_connections, open_files)
        if lowered:
            self.log.warning("geworker: %s", lowered)
        if os.geteuid() == 0 and self.cfg.uid != 0:
            os.setgroups([])  # drop root's supplementary groups before the user switch
        super().init_process()

    def load_wsgi(self) -> None:
        """Import the app, match its listeners to the sockets, run ``on_worker_start``.

        Runs before ``booted`` is set: at the very first start any failure
        here halts gunicorn with exit code 3 instead of respawning a broken
        worker forever. A worker replacing one that failed to boot first
        waits its back-off.
        """
        self._wait_before_retry()
        uri = getattr(self.app, "app_uri", None)
        self._boot_stage = f"loading {uri or 'the app'}"
        if uri is not None and not self.cfg.paste:
            self.wsgi = load_app(uri)  # one-line errors; a bare module name finds its Server
        else:
            super().load_wsgi()
        self._boot_stage = "matching the listeners"
        app = self.wsgi
        if isinstance(app, (Server, App)):
            self.servers = servers_of(app)
        else:
            from .wsgi_app import server_for_wsgi_app  # a plain WSGI app on gunicorn's binds

            addresses = [address for _, address in self.bound]
            self.servers = [server_for_wsgi_app(app, addresses, self.cfg)]
        self.server = self.servers[0]
        self.runtimes = [runtime_of(server) for server in self.servers]
        self.bindings = self._match_listeners(self.servers)
        self._boot_stage = "on_worker_start"
        self._call_hook("on_worker_start", propagate=True)
        self._boot_stage = "starting to serve"

    def _wait_before_retry(self) -> None:
        """After failed boots at this index, wait the back-off (heartbeating); a stop exits."""
        failures = shared.boot_failures(self.generation, self.index)
        if not failures:
            return
        deadline = time.monotonic() + bootretry.retry_delay(failures)
        while (left := deadline - time.monotonic()) > 0:
            self.notify()
            if self._stop_event.wait(min(left, 1.0)):
                self.log.info("geworker: worker %s stopped before its boot attempt %d",
                              self.pid, failures + 1)
                sys.exit(0)

    def _boot_failed(self, exc: Exception) -> None:
        """Log a boot failure once, leave its reason for the master, exit to be retried."""
        reason = bootretry.describe_failure(exc, self._boot_stage)
        attempt = shared.count_boot_failure(self.generation, self.index)
        retry_in = bootretry.retry_delay(attempt)
        holding = self.generation > shared.serving_generation()  # no worker of ours serves
        self.log.error("geworker: worker %s (index %s, generation %s) failed to boot: %s "
                       "(attempt %d, next in %.0f s)%s", self.pid, self.index, self.generation,
                       reason, attempt, retry_in,
                       "; the old workers keep serving" if holding else "",
                       exc_info=attempt == 1)  # the traceback once, the reason every time
        bootretry.write_failure(self.pid, {
            "pid": self.pid, "index": self.index, "generation": self.generation,
            "reason": reason, "attempt": attempt, "retry_in": retry_in, "time": time.time()})
        sys.exit(bootretry.BOOT_RETRY_EXIT)

    def _match_listeners(self, servers: list[Server]) -> list[tuple[Any, Listener, Server]]:
        """Pair each socket gunicorn bound with the declared listener and its server."""
        by_address: dict[Any, tuple[Listener, Server]] = {}
        for server in servers:
            for listener in server.stream_listeners:
                by_address[_normalize(parse_address(listener.bind))] = (listener, server)
        bindings = []
        for gsock, address in self.bound:
            if _normalize(address) not in by_address:
                raise ConfigurationError(
                    f"gunicorn bound {address}, which {self.wsgi!r} does not declare")
            bindings.append((gsock, *by_address.pop(_normalize(address))))
        if by_address:
            missing = ", ".join(lnr.url for lnr, _ in by_address.values())
            raise ConfigurationError(f"no socket was bound for {missing}; declare "
                                     "addresses in the app only, without --bind")
        for _, listener, _ in bindings:
            if listener.tls and listener.options.ssl_context is None and not (
                    self.cfg.certfile and self.cfg.keyfile):
                raise ConfigurationError(
                    f"{listener.url} needs TLS: give it ssl_context=... or run gunicorn "
                    "with --certfile and --keyfile")
        for server in servers:
            for listener in server.datagram_listeners:
                sock = shared.datagram_socket(listener.bind)
                if sock is None:
                    raise ConfigurationError(f"the master did not bind {listener.url}")
                bindings.append((sock, listener, server))
        return bindings

    def init_signals(self) -> None:
        """gunicorn's handlers, with TERM/QUIT/INT/USR1 moved onto the gevent loop."""
        import gevent
        from gevent.event import Event

        # Before the handlers: a TERM that arrives while the app still boots
        # must stop the worker as soon as it is up, not be lost.
        self._stop_event = Event()
        super().init_signals()
        gevent.signal_handler(signal.SIGTERM, self._request_stop, False)
        gevent.signal_handler(signal.SIGQUIT, self._request_stop, True)
        gevent.signal_handler(signal.SIGINT, self._request_stop, True)
        gevent.signal_handler(signal.SIGUSR1, lambda: gevent.spawn(self.log.reopen_files))
        for sig in self._early_stops:
            self._request_stop(sig != signal.SIGTERM)

    def _catch_early_stop(self) -> None:
        """Keep stop signals that arrive before gunicorn installs the worker's handlers.

        The master signals old workers right after forking new ones (a reload,
        a fast stop), and until now the child still ran the master's handler,
        which queues the signal in a copy of the master's queue and drops it.
        """
        stops = (signal.SIGTERM, signal.SIGQUIT, signal.SIGINT)
        queued = []
        master_queue = _gunicorn.master_signal_queue()
        with contextlib.suppress(queue.Empty):
            while True:
                queued.append(master_queue.get_nowait())
        early = [sig for sig in queued[self._master_queue_at_fork:] if sig in stops]
        self._early_stops: list[int] = early
        for sig in stops:
            signal.signal(sig, lambda signum, frame: early.append(signum))

    def _request_stop(self, quick: bool) -> None:
        self.alive = False
        self.quick_exit = self.quick_exit or quick
        if quick:
            import gevent

            gevent.spawn(self.cfg.worker_int, self)
        self._stop_event.set()

    def notify(self) -> None:
        """Heartbeat for the master; stop if the master went away."""
        try:
            super().notify()
        except (ValueError, OSError):
            return  # exiting: gunicorn closed the heartbeat file under this greenlet
        if self.ppid != os.getppid() and self.alive:
            self.log.info("geworker: parent changed, shutting down %s", self)
            self._request_stop(False)

    # -- serving ----------------------------------------------------------

    def run(self) -> None:
        """Serve every listener until told to stop, then drain."""
        import gevent
        from gevent.pool import Group, Pool
        from gevent.server import StreamServer

        from ..transport.datagram import DatagramListener

        self._start_messaging()
        # Every greenlet serving a stream connection; parked connections have none.
        self.connection_greenlets = greenlets = Group()
        for runtime in self.runtimes:
            runtime.spawn = greenlets.spawn
        self.balancer = Balancer(shared.shared_memory(), self.index, self.cfg.workers,
                                 _OpenConnections(self.runtimes))
        self.balancer.start(gevent.get_hub().loop)
        # Each datagram in hand holds up to 64 KiB: bounded apart from the stream cap
        # (at the bound the socket is not read and the kernel drops the excess).
        datagram_pool = Pool(min(self.worker_connections, DATAGRAM_HANDLERS))
        for sock, listener, server in self.bindings:
            if listener.is_datagram:
                gsock = gevent.socket.socket(sock.family, socket.SOCK_DGRAM,
                                             fileno=os.dup(sock.fileno()))
                dserver = DatagramListener(gsock, listener, server, datagram_pool, self.log)
                dserver.start()
                self.datagram_servers.append(dserver)
                continue
            sock.setblocking(False)
            context = self._tls_context(listener)
            acceptor = StreamServer(sock, handle=partial(self._handle, listener, server, context),
                                    spawn=greenlets.spawn)
            _gevent.keep_socket_open(acceptor)  # a parked connection outlives its handler
            if self.cfg.workers > 1:
                acceptor.max_accept = 1
            _gevent.set_accept_gate(acceptor,
                                    self.balancer.gate(acceptor, self._at_connection_limit))
            _gevent.guard_accept(acceptor, partial(self._accept_exhausted, acceptor,
                                                   _gevent.OneShot(acceptor.loop, ACCEPT_PAUSE)))
            acceptor.start()
            self.stream_servers.append(acceptor)
        self.datagram_pool = datagram_pool
        self._start_parking()
        self._serving = True
        shared.mark_serving(self.generation, self.index)
        self.log.info("geworker: worker %s (index %s) serving %s (worker_connections=%d)",
                      self.pid, self.index,
                      " ".join(lnr.url for _, lnr, _ in self.bindings) or "no listener",
                      self.worker_connections)
        gevent.spawn(self._heartbeat)
        self._stop_event.wait()
        self._stop()

    def _tls_context(self, listener: Listener) -> Any:
        """The SSL context of a TLS listener: its own, or gunicorn's certfile/keyfile."""
        if not listener.tls:
            return None
        own = listener.options.ssl_context
        if own is not None:
            weak = weaknesses(own)
            if weak:
                self.log.warning("geworker: the ssl_context of %s allows %s; geworker's own "
                                 "contexts do not", listener.url, " and ".join(weak))
            return own
        from gunicorn.sock import ssl_context

        return harden(ssl_context(self.cfg))

    def _at_connection_limit(self) -> bool:
        """``worker_connections`` reached: greenlets (handshakes included) plus parked.

        At the cap the worker stops accepting: new clients wait in the listen
        backlog, which every worker shares, so a worker with room takes them;
        with every worker full they wait there (up to the backlog's size) until
        a connection closes. Reaching the cap is logged once per episode and
        counted (``connection_limit`` in ``geworker status``).
        """
        full = (len(self.connection_greenlets) + counters.connections_parked
                >= self.worker_connections)
        if full != self._at_cap:
            self._at_cap = full
            if full:
                counters.errors["connection_limit"] += 1
                self.log.warning("geworker: worker %s reached worker_connections=%d; new "
                                 "connections wait in the listen backlog until one closes",
                                 self.pid, self.worker_connections)
            else:
                self.log.info("geworker: worker %s is below worker_connections=%d again",
                              self.pid, self.worker_connections)
        return full

    def _accept_exhausted(self, acceptor: Any, retry: Any, exc: OSError) -> None:
        """accept() failed for want of a resource (EMFILE, ENFILE...): pause, log rarely."""
        counters.errors["accept_" + (errno.errorcode.get(exc.errno or 0, "error")).lower()] += 1
        acceptor.stop_accepting()
        retry.start(_gevent.accept_retry(acceptor))
        now = time.monotonic()
        if now - self._exhausted_logged >= EXHAUSTED_LOG_EVERY:
            self._exhausted_logged = now
            self.log.warning("geworker: worker %s cannot accept: %s; accepting pauses %.1f s at "
                             "a time until descriptors are free (logged at most every %.0f s)",
                             self.pid, exc.strerror or exc, ACCEPT_PAUSE, EXHAUSTED_LOG_EVERY)

    def _handle(self, listener: Listener, server: Server, context: Any, sock: Any,
                address: Any) -> None:
        try:
            tcp = listener.transport == "tcp"
            if tcp:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            options = listener.options
            if (options.tcp_keepalive is not None or options.tcp_user_timeout is not None
                    or options.socket_send_buffer is not None):
                heartbeat.apply_socket_options(sock, options, tcp)
            if context is not None:
                sock = tls_handshake(sock, address, listener, context, self.log)
                if sock is None:
                    return
            conn = listener.connection_class(sock, address, listener, server, self.log)
        except BaseException:
            sock.close()
            raise
        conn.serve()  # closes the socket when the connection ends (not when it parks)

    def _start_parking(self) -> None:
        """Sweep for silent connections to park (see ``geworker.transport.parking``).

        A sweep parks at most PARK_LIMIT connections (a bounded pause of the
        hub); when it reached the limit, the next one runs after PARK_AGAIN
        seconds instead of a whole PARK_SWEEP, so a wave of 10,000 connections
        that fell silent together (after a heartbeat, a broadcast) parks in
        well under a second while other events run between the sweeps.
        """
        import gevent

        from ..transport.parking import park_idle

        loop = gevent.get_hub().loop
        wave = 0  # parked since the last sweep that parked nothing
        again = _gevent.OneShot(loop, PARK_AGAIN)

        def sweep() -> None:
            nonlocal wave
            parked = park_idle(PARK_LIMIT)
            wave += parked
            if parked >= PARK_LIMIT:
                again.start(sweep)
            elif not parked:
                if wave >= TRIM_AFTER:
                    release_free_memory()
                wave = 0

        self._parker = loop.timer(PARK_SWEEP, PARK_SWEEP)
        self._parker.start(sweep)
        self._parker_again = again

    def _heartbeat(self) -> None:
        import gevent

        interval = max(0.05, min(1.0, self.timeout / 2)) if self.timeout else 1.0
        self.snapshots = snapshots = SnapshotWriter(self, interval)
        while True:
            self.notify()
            snapshots.write()  # status snapshot + metrics; never raises
            if self.alive and counters.messages_in >= self.max_requests:
                self.log.info("geworker: %s messages handled (max_requests=%s), "
                              "restarting %s", counters.messages_in, self.max_requests, self)
                self._request_stop(False)
            gevent.sleep(interval)

    def _hold_until_replaced(self) -> None:
        """On a reload, keep serving until a worker of a newer generation serves.

        gunicorn sends ``TERM`` to the old workers right after forking the
        new ones. If those cannot boot (the database is down), stopping at
        once would leave nobody accepting; so an old worker keeps accepting
        and serving until a newer worker serves, and drains only then. It
        stops holding at once for a quick stop, or when the master stops
        or goes away.
        """
        import gevent

        def waiting() -> bool:
            return (not self.quick_exit and shared.serving_generation() <= self.generation
                    and not shared.master_stopping() and os.getppid() == self.ppid)

        if shared.reload_generation() <= self.generation or not waiting():
            return
        self.holding = True
        started = time.monotonic()
        self.log.info("geworker: %s keeps serving until a worker of generation %d serves",
                      self, shared.reload_generation())
        while waiting():
            gevent.sleep(0.05)
        self.holding = False
        self.log.info("geworker: %s held for %.1f s", self, time.monotonic() - started)

    def _stop(self) -> None:
        import gevent

        self._hold_until_replaced()
        for runtime in self.runtimes:
            runtime.draining = True
        # gunicorn may TERM a stopping worker again (TTOU: manage_workers runs
        # before the first TERM is reaped); once gevent's handler is gone at
        # exit, that second TERM would kill the process mid-exit.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        self.balancer.stop()
        for acceptor in self.stream_servers:
            acceptor.close()
        handover = gevent.spawn(self._hand_over_datagrams)
        if shared.reload_generation() > self.generation:
            self._call_hook("on_worker_reload")
        self._call_hook("on_worker_stop")
        timers.cancel_all()
        if "geworker.transport.client" in sys.modules:  # (the app opened client connections)
            from ..transport.client import drain_clients

            drain_clients()
        self._parker.stop()
        self._parker_again.stop()
        connections = _OpenConnections(self.runtimes)
        greenlets, datagram_pool = self.connection_greenlets, self.datagram_pool
        if not self.quick_exit:
            self.log.info("geworker: %s stopping, draining %d connection(s)", self,
                          len(connections))
            for conn in connections.all():
                conn.drain()
            deadline = gevent.Timeout(self.cfg.graceful_timeout, False)
            with deadline:
                handover.join()
                datagram_pool.join()
                while connections or greenlets:  # parked ones have no greenlet to join
                    gevent.sleep(0.02)
        left = len(connections) + len(datagram_pool)
        if left or greenlets:
            if left and not self.quick_exit:
                self.log.warning("geworker: graceful_timeout (%ss) reached, dropping %d "
                                 "connection(s)", self.cfg.graceful_timeout, left)
            for conn in connections.all():
                conn.abort()  # parked: no greenlet to kill
            greenlets.kill(timeout=1)
            datagram_pool.kill(timeout=1)
        if self.messenger is not None:
            self.messenger.close()
        if self.snapshots is not None:
            self.snapshots.remove()

    def _start_messaging(self) -> None:
        """Join the other workers (or Redis) for :mod:`geworker.messaging`."""
        from ..messaging import Messenger, install
        from ..messaging.backend import Backend
        from ..messaging.backends import MESSAGING_ENV, backend_for_url
        from ..messaging.wire import Op

        app = self.wsgi
        url = (getattr(app, "messaging", None) or os.environ.get(MESSAGING_ENV) or "local")
        run_dir = rundir.run_dir()
        backend: Backend
        try:
            if url != "local":
                backend = backend_for_url(url, listen=True, log=self.log)
            elif run_dir is None:
                raise OSError("the instance has no run directory")
            else:
                from ..messaging.embedded import EmbeddedBackend

                backend = EmbeddedBackend(run_dir, listen=True, log=self.log)
        except (OSError, ConfigurationError) as exc:
            self.log.warning("geworker: messaging reaches this worker only: %s", exc)
            backend = Backend(log=self.log)
        self.messenger = messenger = Messenger(backend=backend)
        install(messenger)

        def publish(server: str, message: Any, exclude: set[int]) -> None:
            skip = [f"{membership.node}{conn_id:x}" for conn_id in exclude]
            backend.send(Op.ALL, [server, skip], message, here=False)

        for runtime in self.runtimes:
            runtime.publish = partial(publish, runtime.server.name)

    def _hand_over_datagrams(self) -> None:
        """Stop reading UDP, once a worker of the new generation reads it (on reload).

        Datagrams wait in the master-bound socket while nobody reads, and a
        socket buffer overflows in well under a second: so on a reload the old
        worker keeps reading until a new one serves. Handlers already running
        still reply, since the socket stays open.
        """
        import gevent

        if not self.quick_exit:
            while (shared.serving_generation() < shared.reload_generation() > self.generation
                   and not shared.master_stopping()):
                gevent.sleep(0.02)
        for dserver in self.datagram_servers:
            dserver.stop_reading()

    def _call_hook(self, name: str, propagate: bool = False) -> None:
        """Call every server's ``name`` hook with this worker, in declaration order."""
        for server in self.servers:
            hook = server.callbacks.get(name)
            if hook is None:
                continue
            try:
                hook(self)
            except Exception:
                if propagate:
                    raise
                self.log.exception("geworker: %s of server %r raised", name, server.name)

    @property
    def count(self) -> int:
        """How many workers the instance runs (gunicorn's ``-w``; ``TTIN``/``TTOU`` change it)."""
        return int(self.cfg.workers)

    @property
    def connection_count(self) -> int:
        """How many stream connections this worker has open, across its servers."""
        return len(_OpenConnections(self.runtimes))

    @property
    def connections(self) -> list[Any]:
        """Every open stream connection of this worker, across its servers."""
        return _OpenConnections(self.runtimes).all()


_trim: Any = None


def release_free_memory() -> None:
    """Give freed heap pages back to the system (glibc's ``malloc_trim``; else nothing).

    Without it a worker whose connections just parked keeps its peak RSS:
    the freed greenlet stacks sit in malloc's free lists.
    """
    global _trim
    if _trim is None:
        import ctypes

        # The process's own symbols (libc is loaded): no ctypes.util.find_library,
        # which runs ldconfig in a subprocess, a blocking call this timer callback
        # cannot make (gevent raised BlockingSwitchOutError there).
        try:
            _trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)




class _OpenConnections:
    """The open connections of several servers' runtimes, counted and listed together."""

    __slots__ = ("runtimes",)

    def __init__(self, runtimes: list[ServerRuntime]) -> None:
        self.runtimes = runtimes

    def __len__(self) -> int:
        return sum(len(runtime.connections) for runtime in self.runtimes)

    def all(self) -> list[Any]:
        return [conn for runtime in self.runtimes for conn in list(runtime.connections.values())]


def _normalize(address: Any) -> Any:
    """Make gunicorn's parsed addresses comparable (unix paths are bytes or str)."""
    if isinstance(address, bytes):
        return address.decode()
    if isinstance(address, tuple):
        return (address[0], int(address[1]))
    return address
