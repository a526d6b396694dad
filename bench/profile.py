"""``python -m bench.profile``: py-spy profile of one geworker worker under load.

Starts geworker for a workload (default ``text1``), drives it with the bench's
load generator, records one worker with ``py-spy record --format raw`` and
prints the hottest functions by own time and by total time. The raw
(collapsed) stacks and a flame graph SVG are kept in ``--output``.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import procstat
from .__main__ import build, ensure_tools
from .servers import SERVERS, RunningServer
from .workloads import WORKLOADS


def top(raw: Path, limit: int = 25) -> str:
    """Own-time and total-time tables from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    own_func: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        samples += n
        frames = [_short(f) for f in stack.split(";")]
        own[frames[-1]] += n
        own_func[frames[-1].split(" (")[0] + " (" + frames[-1].split(" (")[-1].split(":")[0] + ")"
                 if " (" in frames[-1] else frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    if not samples:
        return "no samples"
    out = [f"{samples} samples", "", "| own % | function |", "|---:|---|"]
    out += [f"| {n / samples * 100:.1f} | {f} |" for f, n in own_func.most_common(limit)]
    out += ["", "| own % | line |", "|---:|---|"]
    out += [f"| {n / samples * 100:.1f} | {f} |" for f, n in own.most_common(limit)]
    out += ["", "| total % | function |", "|---:|---|"]
    out += [f"| {n / samples * 100:.1f} | {f} |" for f, n in total.most_common(limit)]
    return "\n".join(out)


def _short(frame: str) -> str:
    """``func (path/to/file.py:123)`` -> ``func (file.py:123)``."""
    name, _, where = frame.partition(" (")
    if where:
        path, _, lineno = where.rstrip(")").rpartition(":")
        return f"{name} ({'/'.join(Path(path).parts[-2:])}:{lineno})"
    return frame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    ap.add_argument("--workload", default="text1",
                    choices=[w for w, wl in WORKLOADS.items() if wl.mode not in ("idle", "idlews")])
    ap.add_argument("--server", default="geworker", choices=list(SERVERS),
                    help="what to profile (a peer, for comparison)")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--output", type=Path, default=Path("profile"))
    ap.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    args = ap.parse_args(argv)
    wl = WORKLOADS[args.workload]
    ensure_tools([args.server], [args.workload], True)
    if shutil.which("py-spy") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "py-spy"], check=True)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="geworker-profile-") as tmp:
        tmpdir = Path(tmp)
        build(tmpdir)
        rs = RunningServer(SERVERS[args.server], wl.kind, args.workers, tmpdir, tmpdir)
        gen = None
        try:
            rs.wait_ready()
            span = args.duration + 3
            if wl.mode == "wrk":
                gen = subprocess.Popen(["wrk", "-t2", f"-c{args.connections}", f"-d{span:.0f}s",
                                        f"http://127.0.0.1:{rs.port}/"], stdout=subprocess.DEVNULL)
            else:
                gen = subprocess.Popen([str(tmpdir / "loadgen"), wl.mode, "-p", str(rs.port),
                                        "-c", str(args.connections), "-P", "2", "-S", "2",
                                        "-d", str(span), "-w", "0", "-n", str(wl.pipeline)],
                                       stdout=subprocess.DEVNULL)
            time.sleep(1.5)
            busiest = max(procstat.worker_sockets(rs.sid).items(), key=lambda kv: kv[1])[0]
            raw = args.output / f"{args.workload}.txt"
            extra = ["--native"] if args.native else []
            subprocess.run([pyspy, "record", "--pid", str(busiest), "--duration",
                            str(int(args.duration)), "--rate", str(args.rate), "--format", "raw",
                            "-o", str(raw), "--nonblocking", *extra], check=True,
                           capture_output=True)
            svg = args.output / f"{args.workload}.svg"
            subprocess.run(["sh", "-c", f"'{pyspy}' record --pid {busiest} --duration 3 "
                            f"--rate {args.rate} -o '{svg}' --nonblocking >/dev/null 2>&1"],
                           check=False)
        finally:
            if gen is not None and gen.poll() is None:
                gen.kill()
                gen.wait()
            rs.stop()
    print(f"## py-spy: {args.server} worker, {wl.title}, {args.duration:g} s\n")
    print(top(raw))
    return 0


if __name__ == "__main__":
    sys.exit(main())
