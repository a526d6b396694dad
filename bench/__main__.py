"""``python -m bench``: geworker against the Python peers, same load, interleaved rounds.

See bench/README.md. Run from the repository root.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import report
from .servers import SERVERS, RunningServer, ServerFailed
from .workloads import DEFAULT_WORKLOADS, WORKLOADS, Params, Sample, run

HERE = Path(__file__).resolve().parent
PEER_MODULES = {"uvloop": ["uvloop"], "websockets": ["websockets", "uvloop"],
                "uvicorn": ["uvicorn", "httptools", "uvloop"]}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_tools(servers: list[str], workloads: list[str], install: bool) -> None:
    """pip-install the peers from bench/requirements.txt and apt-get wrk, when missing."""
    missing = sorted({m for s in servers for m in PEER_MODULES.get(s, [])
                      if importlib.util.find_spec(m) is None})
    if missing:
        if not install:
            sys.exit(f"bench: missing {', '.join(missing)}; "
                     f"pip install -r {HERE / 'requirements.txt'}")
        log(f"bench: installing peers ({', '.join(missing)}) from bench/requirements.txt")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r",
                        str(HERE / "requirements.txt")], check=True)
        importlib.invalidate_caches()
    if "http" in workloads and shutil.which("wrk") is None:
        if not install:
            sys.exit("bench: wrk is missing (apt-get install wrk)")
        log("bench: installing wrk with apt-get")
        if subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False).returncode:
            subprocess.run(["apt-get", "update", "-q"], check=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=True)
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        sys.exit("bench: a C compiler (gcc) is needed to build the load generator")


def build(dest: Path) -> None:
    """Compile the load generator and the C calibration server."""
    cc = shutil.which("gcc") or "cc"
    for name in ("loadgen", "cecho"):
        subprocess.run([cc, "-O2", "-o", str(dest / name), str(HERE / "c" / f"{name}.c")],
                       check=True)


def machine() -> str:
    """CPU model, cores, load and versions, for the record."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = []
    for dist in ("geworker", "gevent", "greenlet", "gunicorn", "h11", "wsproto", "uvloop",
                 "uvicorn", "httptools", "websockets"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)
        versions.append((out.stdout or out.stderr).split("[")[0].strip().splitlines()[0])
    load = os.getloadavg()
    return (f"- machine: {model}, {os.cpu_count()} cores, Linux {platform.release()}, "
            f"load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n"
            f"- Python {platform.python_version()}; {', '.join(versions)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    ap.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                    help=f"comma-separated, from: {', '.join(WORKLOADS)} "
                    "(default: all but scale)")
    ap.add_argument("--servers", default=",".join(SERVERS),
                    help=f"comma-separated, from: {', '.join(SERVERS)}")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="measured seconds per run")
    ap.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before it")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--size", type=int, default=64, help="bytes per message")
    ap.add_argument("--gen-procs", type=int, default=2, help="load generator processes")
    ap.add_argument("--idle-connections", type=int, default=10000,
                    help="connections for the idle memory and broadcast workloads")
    ap.add_argument("--idle-procs", type=int, default=4,
                    help="generator processes (and source addresses) holding them")
    ap.add_argument("--workers", type=int, default=2, help="server processes")
    ap.add_argument("--quick", "--smoke", dest="quick", action="store_true",
                    help="one short round with few connections (keeps the bench working)")
    ap.add_argument("--no-install", action="store_true", help="never pip/apt-get install")
    ap.add_argument("--output", type=Path, help="also write the tables (markdown) to this file")
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.warmup = 1, 1.0, 0.2
        args.connections, args.idle_connections = min(args.connections, 10), 200
        args.idle_procs = 2
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workloads = [w for w in args.workloads.split(",") if w]
    servers = [s for s in args.servers.split(",") if s]
    for name, known in ((workloads, WORKLOADS), (servers, SERVERS)):
        unknown = [n for n in name if n not in known]
        if unknown:
            sys.exit(f"bench: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    ensure_tools(servers, workloads, not args.no_install)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # servers inherit it
    params = Params(duration=args.duration, warmup=args.warmup, connections=args.connections,
                    size=args.size, gen_procs=args.gen_procs,
                    idle_connections=args.idle_connections, idle_procs=args.idle_procs)
    header = machine()
    cmd = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    started = time.monotonic()
    results: report.Results = {}
    broken: dict[tuple[str, str], str] = {}
    with tempfile.TemporaryDirectory(prefix="geworker-bench-") as tmp:
        tmpdir = Path(tmp)
        build(tmpdir)
        loadgen = tmpdir / "loadgen"
        for rnd in range(1, args.rounds + 1):
            for wname in workloads:
                wl = WORKLOADS[wname]
                for server in wl.servers:
                    if server not in servers:
                        continue
                    cell = results.setdefault((wname, server), [])
                    key = (server, wl.kind)
                    workers = wl.workers or args.workers
                    log(f"bench: round {rnd}/{args.rounds} {wname} on {server} ...")
                    rs = RunningServer(SERVERS[server], wl.kind, workers, tmpdir, tmpdir)
                    sample: Sample | None = None
                    try:
                        rs.wait_ready()
                        sample = run(rs, wl, params, loadgen)
                    except ServerFailed as exc:  # retried next round: code may be landing
                        broken[key] = str(exc)
                        log(f"bench:   n/a: {server} cannot serve {wl.kind}: {exc}")
                    except Exception as exc:  # a failed measurement must not stop the run
                        log(f"bench:   failed: {type(exc).__name__}: {exc}")
                    finally:
                        rs.stop()
                    cell.append(sample)
                    if sample is not None:
                        broken.pop(key, None)
                        log(f"bench:   {_brief(sample)}")
    elapsed = time.monotonic() - started
    out = [f"## Results: {cmd}", "", header,
           f"- {args.rounds} round(s) interleaved, {args.duration:g} s measured per run after "
           f"{args.warmup:g} s warm-up, {args.connections} connections, {args.size}-byte "
           f"messages, {args.workers} server processes, {args.gen_procs} generator processes; "
           f"idle/broadcast: {args.idle_connections} connections from {args.idle_procs} "
           f"generator processes; took {elapsed:.0f} s", "",
           "Medians over rounds; errors summed; (2/3) after a server: rounds it could run. "
           "`c` is the C epoll calibration server.", "",
           report.table(results, workloads, servers), "",
           "### geworker against the targets (issue 5, point 2)", "",
           report.ratios(results)]
    if broken:
        out += ["", "Not available:"]
        out += [f"- {s} ({k}): {why}" for (s, k), why in broken.items()]
    text = "\n".join(out)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


def _brief(s: Sample) -> str:
    parts = []
    if s.rate is not None:
        parts.append(f"{s.rate:,.0f}/s p50 {s.p50_us}µs p99 {s.p99_us}µs")
    if s.cpu_us_per_msg is not None:
        parts.append(f"cpu {s.cpu_us_per_msg:.1f}µs/msg")
    if s.kb_per_conn is not None:
        parts.append(f"{s.kb_per_conn:.1f} KB/conn")
    if s.fanout_ms is not None:
        parts.append(f"fan-out {s.fanout_ms:.1f} ms")
    parts.append(f"errors {s.errors} balance {s.balance} connected {s.connected}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
