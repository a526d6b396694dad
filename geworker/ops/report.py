"""What ``geworker status`` and ``geworker connections`` show, read from the run directory.

The reading side of the run directory (see :mod:`geworker.rundir`): a
report lists the master's live children with their snapshots, and formats
them as the text tables the command prints (``--json`` prints the data).

Snapshots are taken on the heartbeat, which runs between callbacks: a worker
stuck in a CPU-bound callback stops refreshing its snapshot, and the report
shows a live worker with a stale snapshot as *busy* rather than missing. A
snapshot whose pid is no longer a child of the master is never shown.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..rundir import (
    CONNECTIONS_REQUEST,
    WORKERS_DIR,
    master_alive,
    proc_stat,
    read_json,
    read_master,
)

__all__ = [
    "CONNECTION_COLUMNS",
    "PROCESS_COLUMNS",
    "boot_failures",
    "collect_connections",
    "collect_status",
    "format_boot_failures",
    "format_bytes",
    "format_connections",
    "format_duration",
    "format_instance",
    "format_status",
    "live_workers",
    "request_connections",
]


def live_workers(master_pid: int) -> list[int]:
    """The master's live child processes (its workers)."""
    pids: set[int] = set()
    for task in Path(f"/proc/{master_pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in (task / "children").read_text().split())
    return sorted(p for p in pids if (st := proc_stat(p)) is not None and st[0] != "Z")


def _stale_after(snap: dict[str, Any]) -> float:
    return 2 * float(snap.get("interval") or 1.0) + 1.0


def collect_status(path: Path, now: float | None = None) -> dict[str, Any] | None:
    """Everything ``geworker status`` shows, or None when no master runs.

    Workers are the master's live children: with a fresh snapshot they show
    its state (``idle``/``draining``); with a stale one they are ``busy``
    (stuck in a callback, so they missed their heartbeat); without one they
    are ``starting``.
    """
    master = read_master(path)
    if master is None or not master_alive(int(master["pid"])):
        return None
    now = time.time() if now is None else now
    workers = []
    for pid in live_workers(int(master["pid"])):
        snap = read_json(path / WORKERS_DIR / f"{pid}.json")
        if not isinstance(snap, dict):
            workers.append({"pid": pid, "state": "starting"})
            continue
        if now - float(snap["heartbeat"]) > _stale_after(snap):
            snap["state"] = "busy"
            snap["busy_since"] = snap["heartbeat"]
        workers.append(snap)
    load = os.getloadavg()
    return {
        "instance": path.name,
        "run_dir": str(path),
        "time": now,
        "master": master,
        "uptime": now - float(master["started"]),
        "load_average": [round(x, 2) for x in load],
        "versions": _versions(),
        "workers": workers,
        "summary": _summary(workers),
        "boot_failures": boot_failures(master, workers, now),
    }


def boot_failures(master: dict[str, Any], workers: list[dict[str, Any]],
                  now: float) -> list[dict[str, Any]]:
    """The worker indexes whose last boot failed and that no worker serves yet.

    From the master's record (``boot_failures``, see
    ``geworker.master.record``), less those a live worker of that index and
    generation (or a newer one) now serves; each with ``next_in``, the
    seconds until the next attempt boots (0: booting now). Sorted by index.
    """
    serving = {(w.get("index"), w.get("generation")) for w in workers if "heartbeat" in w}
    found = []
    for entry in (master.get("boot_failures") or {}).values():
        index, generation = entry.get("index"), int(entry.get("generation", 0))
        if any(i == index and g is not None and g >= generation for i, g in serving):
            continue
        next_in = max(0.0, float(entry.get("retry_at", now)) - now)
        found.append({**entry, "next_in": round(next_in, 1)})
    return sorted(found, key=lambda e: e.get("index", 0))


def _versions() -> dict[str, str]:
    import gevent
    import gunicorn

    from .. import __version__

    return {"geworker": __version__, "gunicorn": gunicorn.__version__,
            "gevent": gevent.__version__, "python": sys.version.split()[0]}


def _summary(workers: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, Any] = {"processes": 0, "rss": 0, "connections": 0, "send_failures": 0,
                             "timers": 0, "messages": 0, "qps": 0.0}
    for w in workers:
        total["processes"] += 1
        total["rss"] += w.get("rss", 0)
        total["connections"] += w.get("connections", 0)
        total["timers"] += w.get("timers", 0)
        total["qps"] += w.get("qps", 0.0)
        c = w.get("counters") or {}
        total["send_failures"] += c.get("send_failures", 0)
        total["messages"] += c.get("messages_in", 0)
    total["qps"] = round(total["qps"], 1)
    total["messaging"] = _messaging_summary(workers)
    return total


#: Messaging counts summed over the workers (``status`` and ``status --json``).
MESSAGING_SUMS = ("uids", "groups", "relayed_out", "relayed_in", "dropped", "query_timeouts",
                  "send_failures", "reconnects", "rejected_peers")


def _messaging_summary(workers: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    states = [w["messaging"] for w in workers if w.get("messaging")]
    if not states:
        return None
    summary: dict[str, Any] = {"kind": ",".join(sorted({m["kind"] for m in states})),
                               "connected": sum(1 for m in states if m["connected"]),
                               "workers": len(states)}
    for name in MESSAGING_SUMS:
        summary[name] = sum(m.get(name, 0) for m in states)
    return summary


def request_connections(path: Path) -> int:
    """Ask every worker for its connection list; returns the request stamp."""
    request = path / CONNECTIONS_REQUEST
    request.write_text(str(time.time()))
    os.chmod(request, 0o644)
    return request.stat().st_mtime_ns


def collect_connections(path: Path, stamp: int, timeout: float) -> dict[str, Any] | None:
    """Wait (up to ``timeout`` s) for every live worker to answer a request.

    Returns ``{"instance": name, "run_dir": path, "connections": [...],
    "missing": [pids]}``; workers that did not answer in time (busy in a
    callback) are listed in ``missing``.
    """
    master = read_master(path)
    if master is None or not master_alive(int(master["pid"])):
        return None
    deadline = time.monotonic() + timeout
    while True:
        pids = live_workers(int(master["pid"]))
        answers: dict[int, list[dict[str, Any]]] = {}
        for pid in pids:
            data = read_json(path / WORKERS_DIR / f"{pid}.connections.json")
            if isinstance(data, dict) and data.get("request", 0) >= stamp:
                answers[pid] = data["connections"]
        missing = [p for p in pids if p not in answers]
        if not missing or time.monotonic() > deadline:
            rows = [row for pid in sorted(answers) for row in answers[pid]]
            return {"instance": path.name, "run_dir": str(path), "connections": rows,
                    "missing": missing}
        time.sleep(0.05)


# -- formatting --------------------------------------------------------------


def format_instance(path: Path, pid: int) -> str:
    """The first line of what the commands print: the instance they talk to."""
    return f"instance {path.name} (run dir {path}, master pid {pid})"


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5K``; the unit is K, M or G (powers of 1024)."""
    for unit in ("B", "K", "M", "G"):
        if abs(n) < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n:.1f}G"


def format_duration(seconds: float) -> str:
    """``93784`` -> ``1d 2h 3m 4s``."""
    s = int(max(seconds, 0))
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{days}d"] if days else []
    if days or hours:
        parts.append(f"{hours}h")
    if days or hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{s}s")
    return " ".join(parts)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


PROCESS_COLUMNS = ["pid", "memory", "listening", "name", "connections", "send_fail", "timers",
                   "total_request", "qps", "status", "age", "heartbeat"]
CONNECTION_COLUMNS = ["pid", "cid", "trans", "protocol", "local", "remote", "bytes_r",
                      "bytes_w", "send_q", "state", "age"]


def format_status(data: dict[str, Any], qps: dict[int, float] | None = None) -> str:
    """The human-readable ``geworker status`` report.

    Layout (one value per column, two spaces between columns, so scripts can
    split it; ``--json`` is the stable interface)::

        ----GLOBAL STATUS----
        geworker/0.1.0  gunicorn/27.0.1  gevent/26.9.0  Python/3.11.7
        start time: 2026-11-26 14:00:00   uptime: 1h 2m 3s   load average: 0.1, 0.2, 0.3
        app: app:server   server: echo   workers: 2   processes: 2   reloads: 1
        run dir: /srv/app/.geworker/app-server-49d0cb   master pid: 6518
        reload failed: on_worker_start raised RuntimeError: database down (attempt 3, next in 4 s)
        exit_status            exit_count
        normal                 2
        ----PROCESS STATUS----
        pid  memory  listening  name  connections  ...  status  age  heartbeat
        ...
        Summary  ...

    Args:
        qps: per-pid rates measured by the caller (``status -d``); the
            snapshot's own one-tick rate is used otherwise.
    """
    master = data["master"]
    v = data["versions"]
    lines = ["----GLOBAL STATUS----",
             f"geworker/{v['geworker']}  gunicorn/{v['gunicorn']}  gevent/{v['gevent']}  "
             f"Python/{v['python']}",
             f"start time: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(master['started']))}"
             f"   uptime: {format_duration(data['uptime'])}"
             f"   load average: {', '.join(str(x) for x in data['load_average'])}",
             f"app: {master['app']}   server: {master['name']}   workers: {master['workers']}"
             f"   processes: {len(data['workers'])}   reloads: {master['reloads']}",
             f"run dir: {data['run_dir']}   master pid: {master['pid']}",
             *format_boot_failures(data.get("boot_failures") or [])]
    exits = sorted(master.get("exits", {}).items())
    lines += _table(["exit_status", "exit_count"], [[k, str(n)] for k, n in exits])
    lines.append("----PROCESS STATUS----")
    rows = []
    now = data["time"]
    for w in data["workers"]:
        if "heartbeat" not in w:
            rows.append([str(w["pid"])] + ["-"] * 8 + [f"[{w['state']}]", "-", "-"])
            continue
        rate = (qps or {}).get(w["pid"], w.get("qps", 0.0))
        listening = ",".join(w["listeners"]) or "-"
        rows.append([str(w["pid"]), format_bytes(w["rss"]), listening, w["name"] or "-",
                     str(w["connections"]), str(w["counters"]["send_failures"]),
                     str(w["timers"]), str(w["counters"]["messages_in"]), f"{rate:.1f}",
                     f"[{w['state']}]", format_duration(now - w["started"]),
                     f"{now - w['heartbeat']:.1f}s ago"])
    s = data["summary"]
    total_qps = sum(qps.values()) if qps else s["qps"]
    rows.append(["Summary", format_bytes(s["rss"]), "-", "-", str(s["connections"]),
                 str(s["send_failures"]), str(s["timers"]), str(s["messages"]),
                 f"{total_qps:.1f}", "[Summary]", "-", "-"])
    lines += _table(PROCESS_COLUMNS, rows)
    lines += _messaging_lines(data["workers"], s.get("messaging"))
    return "\n".join(lines)


def format_boot_failures(failures: list[dict[str, Any]]) -> list[str]:
    """One line per reason new workers fail to boot with, for example::

        reload failed: on_worker_start raised RuntimeError: database down (attempt 3, next in 4 s)

    ``reload failed`` for the workers of a reload, ``worker boot failed`` for
    one replacing a worker that died; several workers failing for the same
    reason share a line, with the highest attempt and the nearest retry.
    """
    groups: dict[tuple[bool, str], list[dict[str, Any]]] = {}
    for f in failures:
        groups.setdefault((int(f.get("generation", 0)) > 0, str(f.get("reason"))), []).append(f)
    lines = []
    for (reload, reason), group in groups.items():
        attempt = max(int(f.get("attempt", 0)) for f in group)
        next_in = min(float(f.get("next_in", 0)) for f in group)
        when = f"next in {next_in:.0f} s" if next_in >= 0.5 else "retrying now"
        count = f"{len(group)} workers, " if len(group) > 1 else ""
        lines.append(f"{'reload failed' if reload else 'worker boot failed'}: {reason} "
                     f"({count}attempt {attempt}, {when})")
    return lines


def _messaging_lines(workers: list[dict[str, Any]], summary: dict[str, Any] | None) -> list[str]:
    if not summary:
        return []
    lines = ["----MESSAGING----",
             f"backend: {summary['kind']}   connected: {summary['connected']}/"
             f"{summary['workers']} workers   reconnects: {summary['reconnects']}"]
    rows = [[str(w["pid"])] + [str(w["messaging"].get(n, 0)) for n in MESSAGING_SUMS[:7]]
            for w in workers if w.get("messaging")]
    rows.append(["Summary"] + [str(summary[n]) for n in MESSAGING_SUMS[:7]])
    return lines + _table(["pid", *MESSAGING_SUMS[:7]], rows)


def format_connections(data: dict[str, Any]) -> str:
    """The human-readable ``geworker connections`` table."""
    rows = [[str(c["pid"]), str(c["id"]), c["transport"], c["protocol"], c["local"],
             c["remote"], str(c["bytes_read"]), str(c["bytes_written"]), str(c["send_queue"]),
             c["state"], f"{c['age']:.1f}s"] for c in data["connections"]]
    lines = _table(CONNECTION_COLUMNS, rows)
    if data["missing"]:
        lines.append("busy (no answer in time): "
                     + " ".join(str(p) for p in data["missing"]))
    return "\n".join(lines)
