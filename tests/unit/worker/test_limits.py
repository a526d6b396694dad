"""Sizing worker_connections from the open-file limit."""

from __future__ import annotations

import resource
import subprocess
import sys

from geworker.worker.limits import FD_HEADROOM, GUNICORN_DEFAULT, connection_limit

from conftest import ROOT


def test_gunicorns_default_becomes_the_file_limit_less_headroom():
    assert connection_limit(GUNICORN_DEFAULT, 20000) == (20000 - FD_HEADROOM, None)


def test_an_explicit_setting_is_kept_when_it_fits():
    assert connection_limit(5000, 20000) == (5000, None)
    assert connection_limit(3, 20000) == (3, None)


def test_an_explicit_setting_above_the_file_limit_is_lowered_with_a_warning():
    limit, warning = connection_limit(50000, 20000)
    assert limit == 20000 - FD_HEADROOM
    assert warning is not None and "worker_connections=50000" in warning and "ulimit -n" in warning


def test_a_tiny_file_limit_still_allows_one():
    assert connection_limit(GUNICORN_DEFAULT, 100) == (1, None)


def test_raise_open_files_limit_reaches_the_hard_limit():
    # In a child with a lowered soft limit, so this process keeps its own.
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    code = ("import resource\n"
            f"resource.setrlimit(resource.RLIMIT_NOFILE, (64, {hard}))\n"
            "from geworker.worker.limits import raise_open_files_limit\n"
            "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=30, check=True).stdout.split()
    assert out == [str(hard), str(hard)]
