"""Where the master puts gunicorn's control socket (``geworker.master.record``)."""

from __future__ import annotations

import os

import pytest
from gunicorn.config import Config

from geworker import rundir
from geworker.master import record


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "_run_dir", tmp_path)
    return tmp_path


def test_default_control_socket_moves_into_the_run_dir(run_dir):
    cfg = Config()
    default = cfg.control_socket
    record.place_control_socket(cfg)
    assert cfg.control_socket == str(run_dir / "gunicorn.ctl") != default


def test_a_configured_or_disabled_control_socket_is_kept(run_dir, tmp_path):
    cfg = Config()
    cfg.set("control_socket", str(tmp_path / "mine.ctl"))
    record.place_control_socket(cfg)
    assert cfg.control_socket == str(tmp_path / "mine.ctl")
    cfg = Config()
    cfg.set("control_socket_disable", True)
    default = cfg.control_socket
    record.place_control_socket(cfg)
    assert cfg.control_socket == default


def test_no_run_dir_keeps_gunicorns_default(monkeypatch):
    monkeypatch.setattr(rundir, "_run_dir", None)
    cfg = Config()
    default = cfg.control_socket
    record.place_control_socket(cfg)
    assert cfg.control_socket == default


def test_a_run_dir_too_deep_for_a_unix_socket_gets_a_short_name(tmp_path, monkeypatch):
    deep = tmp_path / ("d" * 60) / ("e" * 60) / ".geworker" / "app-server-abcdef"
    other = tmp_path / ("d" * 60) / ("e" * 60) / ".geworker" / "app-server-123456"
    paths = []
    for path in (deep, other, deep):
        monkeypatch.setattr(rundir, "_run_dir", path)
        cfg = Config()
        record.place_control_socket(cfg)
        paths.append(cfg.control_socket)
    assert paths[0] == paths[2] != paths[1]  # one per run dir, the same at every start
    for p in paths:
        assert len(os.fsencode(p)) <= record.MAX_SOCKET_PATH
        assert os.path.dirname(p) == os.path.dirname(Config().control_socket)
