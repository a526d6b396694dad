"""Finding the app object: one clear line for each mistake (tests/unit/test_server.py has
the declaration errors themselves)."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
import uuid

import pytest

from geworker import ConfigurationError, Server
from geworker.loader import AppLoadError, load_app
from geworker.server import App


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Factory: write source to a uniquely named module in tmp_path; returns its name."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    names = []

    def write(source: str) -> str:
        name = f"app_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


SERVERS = """
from geworker import ConfigurationError, Server
srv = Server("text://127.0.0.1:1", name="a")
"""


def test_named_server(module):
    name = module(SERVERS)
    assert isinstance(load_app(f"{name}:srv"), Server)


def test_missing_name_lists_the_servers_defined(module):
    name = module(SERVERS + "other = Server('text://127.0.0.1:2', name='b')\n")
    with pytest.raises(AppLoadError) as err:
        load_app(f"{name}:server")
    assert str(err.value) == f"{name}.py defines no 'server'; it defines Server objects: srv, other"


def test_bare_module_picks_its_only_server(module):
    name = module(SERVERS)
    assert load_app(name).name == "a"


def test_bare_module_with_several_servers_lists_them(module):
    name = module(SERVERS + "other = Server('text://127.0.0.1:2', name='b')\n")
    with pytest.raises(AppLoadError) as err:
        load_app(name)
    assert str(err.value) == (f"{name}.py defines several servers (srv, other): name one, "
                              f"e.g. {name}:srv, or serve them all: App(srv, other)")


def test_bare_module_prefers_its_app(module):
    name = module(SERVERS + "from geworker.server import App\n"
                  "other = Server('text://127.0.0.1:2', name='b')\napp = App(srv, other)\n")
    app = load_app(name)
    assert isinstance(app, App) and [s.name for s in app.servers] == ["a", "b"]


def test_bare_module_falls_back_to_wsgi_application(module):
    name = module("def application(environ, start_response):\n    return [b'']\n")
    assert callable(load_app(name))


def test_nothing_to_serve(module):
    name = module("x = 1\n")
    with pytest.raises(AppLoadError, match=r"defines no Server, App or WSGI 'application'$"):
        load_app(name)
    with pytest.raises(AppLoadError, match=r"'\w+:x' is a int, neither .* it defines no Server"):
        load_app(f"{name}:x")


def test_syntax_error_is_one_line(module):
    name = module("from geworker import Server\nserver = Server(\n")
    with pytest.raises(AppLoadError) as err:
        load_app(f"{name}:server")
    assert str(err.value) == (f"{name}.py, line 2: SyntaxError: '(' was never closed: "
                              "server = Server(")


def test_declaration_error_names_the_line_of_the_app(module):
    name = module("from geworker import Server\n\nserver = Server('websockets://127.0.0.1:1')\n")
    with pytest.raises(AppLoadError) as err:
        load_app(f"{name}:server")
    assert str(err.value).startswith(f"{name}.py:3: websockets://127.0.0.1:1: unknown scheme")
    assert "\n" not in str(err.value)


def test_missing_module(module, tmp_path):
    with pytest.raises(AppLoadError, match=r"^no module 'nosuchapp' in \. or on PYTHONPATH"):
        load_app("nosuchapp:server")


def test_the_apps_own_errors_keep_their_traceback(module):
    broken = module("import no_such_dependency_here\n")
    with pytest.raises(ModuleNotFoundError):
        load_app(f"{broken}:server")
    crashing = module("1 / 0\n")
    with pytest.raises(ZeroDivisionError):
        load_app(crashing)


def test_factory(module):
    name = module(SERVERS + "def make():\n    return srv\n")
    assert load_app(f"{name}:make()").name == "a"


def test_app_refuses_shared_addresses_and_names():
    a = Server("text://127.0.0.1:1", name="a")
    shared = "repeats the address of 'text://127.0.0.1:1' of server 'a'"
    with pytest.raises(ConfigurationError, match=re.escape(shared)):
        App(a, Server("frame://127.0.0.1:1", name="b"))
    with pytest.raises(ConfigurationError, match="two servers are named 'a'"):
        App(a, Server("text://127.0.0.1:2", name="a"))
    with pytest.raises(ConfigurationError, match="at least one Server"):
        App()
    many = [Server(f"text://127.0.0.1:{1000 + i}", name=str(i)) for i in range(257)]
    with pytest.raises(ConfigurationError, match="at most 256 servers"):
        App(*many)
    assert len(App(*many[:256]).servers) == 256
