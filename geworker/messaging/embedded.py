"""The embedded backend: the workers of one instance talk over unix sockets, no service needed.

Each worker listens on ``<run dir>/bus/<node>.sock`` (``node``: the first
12 hex digits of its client ids). The ``bus`` directory is ``0700`` and each
socket ``0600``, and a worker also checks the peer credentials of every
connection it accepts (the same user as the worker, or root), so no other
local user can inject a message or ask a query.

A worker opens one stream to each other worker on first use and keeps it:
frames from one sender to one worker arrive in the order sent. Frames wait
in a bounded queue per stream (:data:`LINK_BUFFER`) and are written by the
stream's own greenlet, so a stuck worker never blocks the sender; past the
bound they are dropped and counted. A worker that exits (or is killed)
closes its streams, so it drops out of every query at once; the socket file
a killed worker leaves is removed by the first worker that finds it dead.

Workers find each other by listing the directory again whenever it
changed (one ``fstat`` per fan-out; and at least every :data:`SCAN_EVERY`
seconds, for file systems with coarse timestamps): a worker started by a
reload, ``TTIN`` or a respawn takes part as soon as it listens, and workers
of the previous generation, still draining after a reload, until they exit.

The same code runs in a plain script (:class:`geworker.Messenger`): there
threads stand in for greenlets, and a send returns once it is written.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from ..errors import RemoteProtocolError
from ..transport.membership import NODE_LENGTH, membership
from .backend import DEFAULT_TIMEOUT, Backend
from .wire import FrameReader, Op

__all__ = ["BUS_DIR", "LINK_BUFFER", "EmbeddedBackend", "open_bus_dir"]

BUS_DIR = "bus"
#: Bytes that may wait for one other worker before frames to it are dropped.
LINK_BUFFER = 64 * 1024 * 1024
#: Seconds between two listings of the bus directory.
SCAN_EVERY = 0.5
#: Seconds to connect to another worker's socket.
CONNECT_TIMEOUT = 2.0
_SUFFIX = ".sock"
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid


def open_bus_dir(run_dir: Path, create: bool) -> int:
    """An fd of the run directory's ``bus`` directory, made private (``0700``).

    Sockets are named through ``/proc/self/fd/<fd>/``, which keeps their
    paths short whatever the run directory's length.

    Raises:
        OSError: when it is missing (and ``create`` is false) or cannot be
            made private to this user.
    """
    path = run_dir / BUS_DIR
    if create:
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    info = os.fstat(fd)
    if create and (info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077):
        try:
            os.fchmod(fd, 0o700)
            if info.st_uid != os.geteuid():
                raise PermissionError(errno.EPERM, f"{path} belongs to uid {info.st_uid}")
        except OSError:
            os.close(fd)
            raise
    return fd


def _allowed(sock: socket.socket) -> tuple[bool, int]:
    """(allowed, uid) of the process at the other end of a unix socket."""
    _, uid, _ = _CRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    return uid in (os.geteuid(), 0), uid


def _spawn(target: Any, *args: Any) -> None:
    # threading's names at call time: inside a worker they are gevent's (monkey patching).
    threading.Thread(target=target, args=args, daemon=True).start()


class _Link:
    """A stream to one other worker: frames out in order, replies to queries in."""

    def __init__(self, backend: EmbeddedBackend, node: str, sock: socket.socket) -> None:
        self.backend = backend
        self.node = node
        self.sock = sock
        self.frames: deque[bytes] = deque()
        self.queued = 0
        self.alive = True
        self._wake = threading.Event()
        self._lock = threading.Lock()
        # A script must not hang on a worker that stopped reading: its writes time out.
        # (A worker's writer greenlet waits instead, behind the LINK_BUFFER bound.)
        sock.settimeout(CONNECT_TIMEOUT if backend.synchronous else None)
        if not backend.synchronous:
            _spawn(self._write)
        _spawn(self._read)

    def put(self, data: bytes) -> bool:
        """Queue (or, in a script, write) one frame; False if the link is gone or full."""
        if not self.alive:
            return False
        if self.backend.synchronous:
            with self._lock:
                try:
                    self.sock.sendall(data)
                    return True
                except OSError:  # TimeoutError included: the frame may be cut, so drop the link
                    self.close()
                    return False
        if self.queued + len(data) > LINK_BUFFER:
            self.backend.stats["dropped"] += 1
            self.backend.warn(f"full-{self.node}", "geworker: messaging to worker %s is %d "
                              "bytes behind; dropping frames", self.node, self.queued)
            return False
        self.frames.append(data)
        self.queued += len(data)
        self._wake.set()
        return True

    def _write(self) -> None:
        frames = self.frames
        while self.alive:
            self._wake.wait()
            self._wake.clear()
            while frames and self.alive:
                batch = [frames.popleft()]
                while frames and len(batch) < 64:
                    batch.append(frames.popleft())
                data = b"".join(batch)
                try:
                    self.sock.sendall(data)
                except OSError:
                    self.close()
                    return
                self.queued -= len(data)

    def _read(self) -> None:
        reader = FrameReader()
        try:
            while self.alive:
                try:
                    data = self.sock.recv(65536)
                except TimeoutError:  # (scripts' links have a timeout: for writes)
                    continue
                if not data:
                    break
                for frame in reader.feed(data):
                    if frame.op is Op.REPLY and len(frame.args) == 2:
                        self.backend.replied(self.node, frame.args[0], frame.args[1])
        except (OSError, RemoteProtocolError):
            pass
        self.close()

    def close(self) -> None:
        """Drop the stream (the other worker exited, or this one stops)."""
        if self.alive:
            self.alive = False
            self._wake.set()
            with contextlib.suppress(OSError):
                self.sock.close()
            self.backend.link_closed(self)


class EmbeddedBackend(Backend):
    """Messaging between the workers of one instance (see the module doc).

    Args:
        run_dir: the instance's run directory.
        listen: True in a worker (it serves its own socket); False for a
            script, which only sends and asks.
        synchronous: write each frame before returning (scripts).
        timeout: seconds a query waits for the other workers.
    """

    kind = "local"

    def __init__(self, run_dir: Path, listen: bool = True, synchronous: bool = False,
                 timeout: float = DEFAULT_TIMEOUT, log: Any = None) -> None:
        super().__init__(timeout, log)
        self.run_dir = run_dir
        self.synchronous = synchronous
        self._dir_fd = open_bus_dir(run_dir, create=listen)
        self._links: dict[str, _Link] = {}
        self._nodes: list[str] = []
        self._scanned = 0.0
        self._changed = 0
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        if listen:
            self._listen()

    def _path(self, name: str) -> str:
        return f"/proc/self/fd/{self._dir_fd}/{name}"

    # -- serving this worker's socket ---------------------------------------

    def _listen(self) -> None:
        name = membership.node + _SUFFIX
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self._path(name))
            os.chmod(name, 0o600, dir_fd=self._dir_fd)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._listener = sock
        _spawn(self._accept, sock)

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            allowed, uid = _allowed(sock)
            if not allowed:
                self.stats["rejected_peers"] += 1
                self.warn("peer", "geworker: refused a messaging connection from uid %d "
                          "(only uid %d and root may connect)", uid, os.geteuid())
                sock.close()
                continue
            _spawn(self._serve_peer, sock)

    def _serve_peer(self, sock: socket.socket) -> None:
        """Carry out the frames another worker (or a script) sends; answer its queries."""
        reader = FrameReader()
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                for frame in reader.feed(data):
                    if frame.op is Op.QUERY:
                        reply = self.answer(frame)
                        if reply is not None:
                            sock.sendall(reply)
                    elif frame.op is not Op.REPLY:
                        self.receive(frame)
        except RemoteProtocolError as exc:
            self.warn("frame", "geworker: closing a messaging stream: %s", exc)
        except OSError:
            pass
        finally:
            sock.close()

    # -- reaching the others --------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while the bus directory is usable."""
        return self._dir_fd >= 0

    def nodes(self) -> list[str]:
        """The other processes' nodes, listed again whenever the bus directory changes."""
        now = time.monotonic()
        try:
            changed = os.fstat(self._dir_fd).st_mtime_ns
        except OSError:
            changed = 0
        if changed != self._changed or now - self._scanned >= SCAN_EVERY:
            try:
                names = os.listdir(self._dir_fd)
            except OSError:
                names = []
            self._nodes = [n[:-len(_SUFFIX)] for n in names if n.endswith(_SUFFIX)
                           and len(n) == NODE_LENGTH + len(_SUFFIX)
                           and n[:NODE_LENGTH] != membership.node]
            self._scanned, self._changed = now, changed
        return self._nodes

    def _link(self, node: str) -> _Link | None:
        link = self._links.get(node)
        if link is not None and link.alive:
            return link
        with self._lock:
            link = self._links.get(node)
            if link is not None and link.alive:
                return link
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(CONNECT_TIMEOUT)
            try:
                sock.connect(self._path(node + _SUFFIX))
            except OSError as exc:
                sock.close()
                if exc.errno == errno.ECONNREFUSED:  # its worker is gone: forget it
                    with contextlib.suppress(OSError):
                        os.unlink(node + _SUFFIX, dir_fd=self._dir_fd)
                    self._scanned = 0.0
                return None
            link = self._links[node] = _Link(self, node, sock)
            return link

    def link_closed(self, link: _Link) -> None:
        """A stream ended: forget it, and stop waiting for the answers it owed."""
        if self._links.get(link.node) is link:
            del self._links[link.node]
        self.node_gone(link.node)

    def _route(self, node: str, data: bytes) -> bool:
        link = self._link(node)
        return link is not None and link.put(data)

    def _fan_out(self, data: bytes, op: Op, args: list[Any]) -> int:
        return sum(self._route(node, data) for node in self.nodes())

    def _ask(self, data: bytes, node: str | None) -> set[str]:
        reached = set()
        for other in ([node] if node is not None else self.nodes()):
            if self._route(other, data):
                reached.add(other)
        return reached

    def close(self) -> None:
        """Stop serving, close every stream, remove this worker's socket."""
        if self._listener is not None:
            with contextlib.suppress(OSError):
                os.unlink(membership.node + _SUFFIX, dir_fd=self._dir_fd)
            self._listener.close()
            self._listener = None
        for link in list(self._links.values()):
            link.close()
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
