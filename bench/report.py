"""Result tables: per workload and server (medians over rounds), and ratios vs the targets."""

from __future__ import annotations

from .workloads import WORKLOADS, Sample, median

Results = dict[tuple[str, str], list[Sample | None]]  # (workload, server) -> one entry per round


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "n/a" if value is None else format(value, spec)


def _balance(samples: list[Sample]) -> tuple[str, float | None]:
    """Connections per worker of the round with the median spread, and that spread in %."""
    spreads = []
    for s in samples:
        if s.balance and sum(s.balance) > 0:
            mean = sum(s.balance) / len(s.balance)
            spreads.append((max(abs(n - mean) for n in s.balance) / mean * 100, s.balance))
    if not spreads:
        return "n/a", None
    spreads.sort()
    spread, counts = spreads[len(spreads) // 2]
    return "/".join(map(str, counts)) + f" ({spread:.0f}%)", spread


def summary(results: Results, server: str, workload: str) -> dict | None:
    """Medians of one (workload, server) cell, or None when it never ran."""
    samples = [s for s in results.get((workload, server), []) if s is not None]
    if not samples:
        return None
    balance, spread = _balance(samples)
    return {
        "rate": median([s.rate for s in samples]),
        "p50": median([s.p50_us for s in samples]),
        "p99": median([s.p99_us for s in samples]),
        "errors": sum(s.errors for s in samples),
        "cpu": median([s.cpu_us_per_msg for s in samples]),
        "gen_cpu": median([s.gen_cpu_us_per_msg for s in samples]),
        "kb": median([s.kb_per_conn for s in samples]),
        "fanout": median([s.fanout_ms for s in samples]),
        "connected": median([s.connected for s in samples]),
        "balance": balance,
        "spread": spread,
        "rounds": len(samples),
        "notes": sorted({s.note for s in samples if s.note}),
    }


def table(results: Results, workloads: list[str], servers: list[str]) -> str:
    """Markdown table of every workload and server that was asked for."""
    rows = ["| workload | server | msg/s | p50 µs | p99 µs | errors | CPU µs/msg "
            "| gen. CPU µs/msg | conns per worker | KB/conn | fan-out ms |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for wname in workloads:
        wl = WORKLOADS[wname]
        for server in wl.servers:
            if server not in servers:
                continue
            cell = summary(results, server, wname)
            if (wname, server) not in results:
                continue
            if cell is None:
                rows.append(f"| {wl.title} | {server} | n/a | | | | | | | | |")
                continue
            idle = wl.mode in ("idle", "idlews", "broadcast", "scale")
            runs = len(results[(wname, server)])
            shown = server if cell["rounds"] == runs else f"{server} ({cell['rounds']}/{runs})"
            rows.append(
                f"| {wl.title}"
                + (f" ({cell['connected']:,.0f})" if idle else "")
                + f" | {shown} | {'' if idle else _fmt(cell['rate'])}"
                f" | {'' if idle else _fmt(cell['p50'])} | {'' if idle else _fmt(cell['p99'])}"
                f" | {cell['errors']} | {'' if idle else _fmt(cell['cpu'], '.1f')}"
                f" | {'' if idle else _fmt(cell['gen_cpu'], '.1f')}"
                f" | {cell['balance'] if (wl.workers or 2) > 1 else ''}"
                f" | {_fmt(cell['kb'], '.1f') if wl.mode in ('idle', 'idlews') else ''}"
                f" | {_fmt(cell['fanout'], '.1f') if wl.mode in ('broadcast', 'scale') else ''}"
                + "".join(f" ({n})" for n in cell["notes"] if wl.mode == "scale") + " |")
    return "\n".join(rows)


def _ratio(results: Results, wl: str, a: str, b: str, key: str = "rate") -> float | None:
    ca, cb = summary(results, a, wl), summary(results, b, wl)
    if not ca or not cb or not ca[key] or not cb[key]:
        return None
    return float(ca[key] / cb[key])


def ratios(results: Results) -> str:
    """geworker against the targets of issue 5 point 2 (same run, same load)."""
    rows = ["| target | measured | goal | met |", "|---|---:|---:|---|"]

    def add(label: str, value: float | None, goal: str, ok: bool | None, spec: str = ".2f",
            unit: str = "x") -> None:
        shown = "n/a" if value is None else f"{value:{spec}}{unit}"
        met = "n/a" if value is None or ok is None else ("yes" if ok else "**no**")
        rows.append(f"| {label} | {shown} | {goal} | {met} |")

    for wl, peer, goal in [("text1", "gevent", 1.0), ("text16", "gevent", 1.0),
                           ("text1", "gevent-reuseport", 1.0), ("text16", "gevent-reuseport", 1.0),
                           ("text1", "uvloop", None), ("text16", "uvloop", None),
                           ("frame", "gevent", None), ("frame", "gevent-reuseport", None),
                           ("http", "uvicorn", 1.0),
                           ("http", "gunicorn-gevent", None), ("ws", "websockets", 1.0)]:
        r = _ratio(results, wl, "geworker", peer)
        add(f"{WORKLOADS[wl].title}: geworker / {peer} (msg/s)", r,
            f"≥ {goal:.1f}x" if goal else "(aim)", None if goal is None or r is None else r >= goal)
    for wl, peer in [("text1", "gevent"), ("text1", "gevent-reuseport"), ("http", "uvicorn"),
                     ("ws", "websockets")]:
        r = _ratio(results, wl, "geworker", peer, "cpu")
        add(f"{WORKLOADS[wl].title}: geworker / {peer} (CPU per msg, lower is better)", r,
            "≤ 1.0x", None if r is None else r <= 1.0)
    for wl, goal in [("idle_tcp", 5.0), ("idle_ws", 8.0)]:
        cell = summary(results, "geworker", wl)
        kb = cell["kb"] if cell else None
        add(f"{WORKLOADS[wl].title}: KB per connection", kb, f"≤ {goal:.0f} KB",
            None if kb is None else kb <= goal, ".1f", " KB")
    spreads = []
    for wl in ("text1", "text16", "frame", "http", "ws", "idle_tcp", "idle_ws"):
        cell = summary(results, "geworker", wl)
        if cell and cell["spread"] is not None:
            spreads.append(cell["spread"])
    worst = max(spreads) if spreads else None
    add("balance: worst spread from even across geworker workloads", worst, "≤ 20%",
        None if worst is None else worst <= 20, ".0f", "%")
    r = _ratio(results, "broadcast", "geworker", "websockets", "fanout")
    add("broadcast fan-out time: geworker / websockets (lower is better)", r, "(aim ≤ 1.0x)", None)
    same, cross = summary(results, "geworker", "relay_same"), summary(results, "geworker",
                                                                      "relay_cross")
    r = cross["rate"] / same["rate"] if same and cross and same["rate"] and cross["rate"] \
        else None
    add("send_to_client: receiver on another worker / on the same worker (msg/s)", r,
        "≥ 0.50x", None if r is None else r >= 0.5)
    for wl in ("text1", "text16", "frame", "http", "ws"):
        best = max((summary(results, s, wl) or {}).get("rate") or 0
                   for s in WORKLOADS[wl].servers if s != "c")
        c = (summary(results, "c", wl) or {}).get("rate")
        add(f"generator headroom, {WORKLOADS[wl].title}: C server / best Python server",
            c / best if c and best else None, "> 1.0x", None if not (c and best) else c > best)
    return "\n".join(rows)
