"""Boot failures once the instance is up (``geworker.worker.bootretry``)."""

from __future__ import annotations

import pytest

from geworker import rundir
from geworker.loader import AppLoadError
from geworker.worker import bootretry


def test_the_back_off_doubles_up_to_its_maximum():
    delays = [bootretry.retry_delay(n) for n in range(9)]
    assert delays == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert bootretry.retry_delay(10**6) == bootretry.RETRY_MAX


def test_the_exit_code_is_not_one_gunicorn_halts_on():
    from gunicorn.arbiter import Arbiter

    assert bootretry.BOOT_RETRY_EXIT not in (0, Arbiter.WORKER_BOOT_ERROR, Arbiter.APP_LOAD_ERROR)


@pytest.mark.parametrize(("exc", "line"), [
    (RuntimeError("database down"), "on_worker_start raised RuntimeError: database down"),
    (RuntimeError("first line\nsecond"), "on_worker_start raised RuntimeError: first line"),
    (KeyError("DB_URL"), "on_worker_start raised KeyError: 'DB_URL'"),
    (RuntimeError(), "on_worker_start raised RuntimeError"),
    (AppLoadError("app.py defines no 'server'"), "app.py defines no 'server'"),
])
def test_a_failure_is_described_in_one_line(exc, line):
    assert bootretry.describe_failure(exc, "on_worker_start") == line


def test_the_reason_goes_through_the_run_directory_once(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "_run_dir", tmp_path)
    (tmp_path / rundir.WORKERS_DIR).mkdir()
    failure = {"index": 1, "generation": 2, "reason": "x", "attempt": 3, "retry_in": 4.0}
    bootretry.write_failure(123, failure)
    assert bootretry.read_failure(123) == failure
    assert bootretry.read_failure(123) is None  # read by the master, then gone
    assert list((tmp_path / rundir.WORKERS_DIR).iterdir()) == []


def test_no_run_directory_no_file(monkeypatch):
    monkeypatch.setattr(rundir, "_run_dir", None)
    bootretry.write_failure(123, {"index": 0})
    assert bootretry.failure_path(123) is None and bootretry.read_failure(123) is None
