"""``release_free_memory`` runs from a timer callback of the patched worker loop."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

SCRIPT = """
from gevent import monkey
monkey.patch_all()
import gevent
from geworker.worker import worker

timer = gevent.get_hub().loop.timer(0.01)
timer.start(worker.release_free_memory)  # as the parking sweep calls it
gevent.sleep(0.2)
print("trim", bool(worker._trim))
"""


def test_release_free_memory_in_a_loop_callback_blocks_nothing():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr and "BlockingSwitchOutError" not in out.stderr, out.stderr
    assert out.stdout.split() == ["trim", "True"]  # glibc's malloc_trim was found
