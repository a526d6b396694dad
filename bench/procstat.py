"""What the bench reads from /proc about a server: its processes, CPU time, memory, sockets."""

from __future__ import annotations

import os
from dataclasses import dataclass

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Proc:
    """One process of a server's session."""

    pid: int
    ppid: int
    cpu: float  # utime + stime, seconds
    rss: int  # bytes


def session(sid: int) -> list[Proc]:
    """Every live process whose session id is ``sid`` (a server started with start_new_session)."""
    procs = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != sid or fields[0] == "Z":
                continue
            with open(f"/proc/{name}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        cpu = (int(fields[11]) + int(fields[12])) / TICK
        procs.append(Proc(int(name), int(fields[1]), cpu, rss))
    return procs


def process_cpu(pid: int) -> float | None:
    """utime + stime of one process (all its threads), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def cpu_seconds(sid: int) -> float:
    """utime + stime of the session's live processes."""
    return sum(p.cpu for p in session(sid))


def rss_bytes(sid: int) -> int:
    """Summed resident memory of the session's processes."""
    return sum(p.rss for p in session(sid))


def socket_count(pid: int) -> int:
    """Open socket file descriptors of ``pid``."""
    count = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                    count += 1
            except OSError:
                pass
    except OSError:
        return 0
    return count


def established_inodes(port: int) -> set[str]:
    """Socket inodes of established TCP connections whose local port is ``port``."""
    inodes = set()
    want = f":{port:04X}"
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1].endswith(want) and fields[3] == "01":
                        inodes.add(fields[9])
        except OSError:
            pass
    return inodes


def worker_connections(sid: int, port: int) -> dict[int, int]:
    """Established connections on ``port`` held by each worker process of the session."""
    inodes = established_inodes(port)
    counts = {}
    for p in session(sid):
        n = 0
        try:
            for fd in os.listdir(f"/proc/{p.pid}/fd"):
                try:
                    link = os.readlink(f"/proc/{p.pid}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    n += 1
        except OSError:
            continue
        counts[p.pid] = n
    return counts


def worker_sockets(sid: int) -> dict[int, int]:
    """Socket counts of the session's worker processes (every process but the leader
    that holds at least one socket, i.e. its listener)."""
    counts = {}
    for p in session(sid):
        if p.pid == sid:
            continue
        n = socket_count(p.pid)
        if n:
            counts[p.pid] = n
    return counts
