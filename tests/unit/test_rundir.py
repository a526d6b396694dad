"""The run directory's name and place (``geworker.rundir``)."""

from __future__ import annotations

import re

from geworker import rundir

URLS = ["text://127.0.0.1:2345", "websocket://0.0.0.0:8080", "text+udp://127.0.0.1:2346"]


def test_instance_name_is_the_app_and_a_digest_of_its_listeners():
    name = rundir.instance_name("app:server", URLS)
    assert re.fullmatch(r"app-server-[0-9a-f]{6}", name), name
    assert rundir.instance_name("app:server", URLS) == name  # stable
    assert rundir.instance_name("app:server", list(reversed(URLS))) == name  # order-free
    assert rundir.instance_name("app:server", iter(URLS)) == name
    # a pinned value: the name must not change between versions, or a new
    # `geworker status` would miss instances an older master started
    assert rundir.instance_name("app:server", ["text://127.0.0.1:2345"]) == "app-server-c167d0"


def test_instance_name_differs_by_listeners_and_app():
    names = {rundir.instance_name("app:server", URLS),
             rundir.instance_name("app:server", URLS[:2]),
             rundir.instance_name("app:server", [*URLS[:2], "text+udp://127.0.0.1:2347"]),
             rundir.instance_name("app:server", []),
             rundir.instance_name("other:server", URLS)}
    assert len(names) == 5
    assert rundir.instance_name("pkg.mod:srv", []).startswith("pkg.mod-srv-")


def test_is_instance_of_matches_the_name_form_only():
    name = rundir.instance_name("a:server", URLS)
    assert rundir.is_instance_of(name, "a:server")
    assert rundir.is_instance_of("a-server", "a:server")  # the older, unsuffixed form
    assert not rundir.is_instance_of(name, "b:server")
    assert not rundir.is_instance_of(rundir.instance_name("a:server-x", URLS), "a:server")
    assert not rundir.is_instance_of("a-server-zzzzzz", "a:server")


def test_instance_addresses_declared_or_bound():
    description = {"kind": "server", "listeners": [{"url": u, "bind": "x"} for u in URLS]}
    assert rundir.instance_addresses(description, ["127.0.0.1:8000"]) == URLS
    wsgi = {"kind": "wsgi", "listeners": []}
    assert rundir.instance_addresses(wsgi, ["127.0.0.1:8000"]) == ["127.0.0.1:8000"]


def test_default_run_dir_is_per_directory_app_and_listeners(tmp_path, monkeypatch):
    monkeypatch.delenv(rundir.RUN_DIR_ENV, raising=False)
    a = rundir.default_run_dir(tmp_path / "a", "app:server", URLS)
    assert a == tmp_path / "a" / ".geworker" / rundir.instance_name("app:server", URLS)
    assert rundir.default_run_dir(tmp_path / "b", "app:server", URLS).parent == \
        tmp_path / "b" / ".geworker"
    assert rundir.default_run_dir(tmp_path / "a", "app:server", URLS[:1]) != a
    monkeypatch.setenv(rundir.RUN_DIR_ENV, str(tmp_path / "run"))
    assert rundir.default_run_dir(tmp_path / "a", "app:server", URLS) == tmp_path / "run"
