"""The layering promises that `lint-imports` cannot see: what an import loads at run time."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import ROOT

HEAVY = ("gevent", "gunicorn", "h11", "wsproto", "greenlet", "redis")


def loaded_after(statement: str) -> set[str]:
    """Top-level packages among HEAVY that ``statement`` loads in a fresh interpreter."""
    code = (f"import sys\n{statement}\n"
            f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, check=True)
    return set(out.stdout.split())


def test_import_geworker_loads_nothing_heavy():
    assert loaded_after("import geworker") == set()


def test_declaring_a_server_loads_nothing_heavy():
    # The master's probe and `geworker status` import the app: a text:// server
    # must not drag in gevent, and h11/wsproto only come with their listeners.
    assert loaded_after("from geworker import Server, timers\n"
                        "Server('text://127.0.0.1:1', 'frame://127.0.0.1:2')") == set()


def test_a_redis_messaging_setting_loads_redis_only_where_it_is_used():
    # The master and `geworker status` import the app: the URL is checked, redis-py is
    # not loaded. A Messenger outside a worker loads redis-py, never gevent.
    assert loaded_after("from geworker import Server\n"
                        "Server('text://127.0.0.1:1', messaging='redis://127.0.0.1:1/0')") == set()
    pytest.importorskip("redis")
    assert loaded_after("from geworker import Messenger\n"
                        "Messenger('redis+cluster://127.0.0.1:1')") == {"redis"}


@pytest.mark.parametrize("module", [
    "geworker.protocols",
    "geworker.http.models",
    "geworker.http.responses",
    "geworker.http.protocol",
    "geworker.http.multipart",
    "geworker.http.static",
    "geworker.http.environ",
    "geworker.http.accesslog",
    "geworker.websocket.protocol",
    "geworker.websocket.handshake",
    "geworker.websocket.deflate",
    "geworker.websocket.frames",
    "geworker.registry",
    "geworker.loader",
    "geworker.listener",
    "geworker.server",
])
def test_sans_io_layer_never_loads_gevent(module):
    loaded = loaded_after(f"import {module}")
    assert not loaded & {"gevent", "gunicorn", "greenlet"}, f"{module} loads {sorted(loaded)}"


def test_public_names_resolve():
    import geworker

    for name in geworker.__all__:
        assert getattr(geworker, name) is not None, name
    import geworker.http

    for name in geworker.http.__all__:
        assert getattr(geworker.http, name) is not None, name
    with pytest.raises(AttributeError):
        geworker.no_such_name  # noqa: B018


def test_the_check_sees_gevent_where_it_is_loaded():
    # The transport layer does import gevent: without this, the checks above could not fail.
    assert {"gevent", "greenlet"} <= loaded_after("import geworker.transport.connection")


def test_the_layers_contract_catches_an_upward_import(tmp_path):
    # lint-imports runs in .ci/run; here it must fail on a copy with one import upside down.
    import shutil

    pytest.importorskip("importlinter")
    shutil.copytree(ROOT / "geworker", tmp_path / "geworker")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    lint = [sys.executable, "-c", "from importlinter.cli import lint_imports_command as c; c()"]
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    clean = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    with open(tmp_path / "geworker" / "protocols" / "text.py", "a") as f:
        f.write("\nfrom ..worker import balance  # noqa\n")
    broken = subprocess.run(lint, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert broken.returncode != 0
    assert "geworker.protocols.text -> geworker.worker.balance" in broken.stdout
