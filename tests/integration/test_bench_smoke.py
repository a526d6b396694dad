"""The benchmark command keeps working: its smoke mode on text echo, geworker and raw gevent.

Speed is never asserted; only that every echo was verified without error and
the table came out.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None and shutil.which("cc") is None,
                                reason="the bench's load generator is compiled with a C compiler")


@pytest.mark.timeout(90)
def test_bench_smoke_text_echo(tmp_path):
    out_file = tmp_path / "results.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--no-install", "--workloads", "text1",
         "--servers", "geworker,gevent", "--output", str(out_file)],
        cwd=ROOT, capture_output=True, text=True, timeout=80)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0] == "newline echo, pipeline 1":
            rows[cells[1]] = cells
    assert set(rows) == {"geworker", "gevent"}, proc.stdout
    for server, cells in rows.items():
        rate, errors = cells[2], cells[5]
        assert re.fullmatch(r"[\d,]+", rate) and int(rate.replace(",", "")) > 0, (server, cells)
        assert errors == "0", (server, cells, proc.stderr[-2000:])
    assert "geworker against the targets" in proc.stdout
    assert out_file.read_text().strip() == proc.stdout.strip()
