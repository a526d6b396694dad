"""The master side without a running master: the BootError boundary and the chained hooks."""

from __future__ import annotations

import pytest
from gunicorn.config import Config

from geworker import rundir
from geworker.errors import BootError
from geworker.master import configure, hooks, record


def test_boot_error_becomes_one_line_and_exit_3(capsys):
    cfg = Config()
    cfg.set("worker_class", "geworker.Worker")
    cfg.set("preload_app", True)
    with pytest.raises(SystemExit) as exc:
        _ = cfg.worker_class  # gunicorn resolves the class, which runs Worker.setup()
    assert exc.value.code == BootError.exit_code == 3
    err = capsys.readouterr().err
    assert err == f"\ngeworker: {configure.PRELOAD_REFUSED}\n\n"
    assert err.strip().startswith("geworker: --preload imports the app in the master")


def test_configure_raises_boot_error_itself():
    cfg = Config()
    cfg.set("preload_app", True)
    with pytest.raises(BootError, match="--preload"):
        configure.configure(cfg)


def test_hooks_count_exits_once_and_clean_up(tmp_path, monkeypatch):
    monkeypatch.setenv(rundir.RUN_DIR_ENV, str(tmp_path / "run"))
    monkeypatch.setattr(rundir, "_run_dir", None)
    monkeypatch.setattr(record, "_master", {})
    cfg = Config()
    user_calls = []
    cfg.set("child_exit", lambda server, worker: user_calls.append(worker.pid))
    path = record.prepare_run_dir(cfg, "app:server", {"name": "t"}, pytest.fail)
    assert path == tmp_path / "run" and rundir.run_dir() == path
    hooks.install(cfg)
    hooks.install(cfg)  # a second configure of the same config chains nothing more
    snap = path / rundir.WORKERS_DIR / "4242.json"
    rundir.write_json(snap, {})

    class Worker:  # what child_exit reads from gunicorn's worker
        pid = 4242
        aborted = False

    class Arbiter:
        cfg = Config()
        log = None

    def reap_workers():  # the frame caller_wait_status reads, as in gunicorn
        status = 7 << 8
        cfg.child_exit(Arbiter(), Worker())
        return status

    reap_workers()
    master = rundir.read_master(path)
    assert master["exits"] == {"exit code 7": 1}
    assert not snap.exists() and user_calls == [4242]
    cfg.nworkers_changed(Arbiter(), 5, 2)
    assert rundir.read_master(path)["workers"] == 5
    cfg.on_exit(Arbiter())
    assert not (path / rundir.MASTER_FILE).exists()
