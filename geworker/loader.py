"""Finding the application object that ``module:name`` points at.

gunicorn's own loader answers every mistake with a traceback. This one
answers a mistake in the app's declarations with one line that says where
and what: the listener URL that is wrong, the callback that cannot be
called, the module that does not define the name asked for (and the servers
it does define). A bug of the app's own (an exception raised while importing
it) keeps its traceback: that is where its cause is.

A bare module name (``app``) means its only :class:`~geworker.server.App`
or :class:`~geworker.server.Server`, or gunicorn's default ``application``.
"""

from __future__ import annotations

import importlib
import os
import traceback
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .server import App, Server

__all__ = ["AppLoadError", "load_app", "servers_of"]

_PACKAGE_DIR = str(Path(__file__).resolve().parent)


class AppLoadError(ConfigurationError):
    """The application could not be found or declares something that cannot work.

    Its message is one line, meant for the user as it is.
    """


def load_app(uri: str) -> Any:
    """Import ``module[:name]`` and return the :class:`Server`, :class:`App` or WSGI app.

    Raises:
        AppLoadError: for a syntax error, a declaration error, a missing
            module or name, or an object that is none of these.
        Exception: whatever the app's own module code raised while importing.
    """
    module_name, _, name = uri.partition(":")
    module = _import(module_name)
    where = _short(getattr(module, "__file__", None) or module_name)
    if name:
        factory = name.endswith("()")
        obj: Any = getattr(module, name.removesuffix("()"), _MISSING)
        if obj is _MISSING:
            raise AppLoadError(f"{where} defines no {name.removesuffix('()')!r}; "
                               f"{_inventory(module)}")
        if factory:
            obj = obj()
    else:
        obj = _pick(module, where)
    if isinstance(obj, (Server, App)) or callable(obj):
        return obj
    raise AppLoadError(f"{uri!r} is a {type(obj).__name__}, neither a geworker Server or App "
                       f"nor a WSGI application; {_inventory(module)}")


def servers_of(app: Server | App) -> list[Server]:
    """The servers an application object runs."""
    return list(app.servers) if isinstance(app, App) else [app]


_MISSING: Any = object()


def _import(module_name: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except SyntaxError as exc:
        where = f"{_short(exc.filename or module_name)}, line {exc.lineno}"
        code = (exc.text or "").strip()
        raise AppLoadError(f"{where}: {type(exc).__name__}: {exc.msg}"
                           + (f": {code}" if code else "")) from None
    except ConfigurationError as exc:
        raise AppLoadError(f"{_app_frame(exc)}: {exc}") from None
    except ModuleNotFoundError as exc:
        if exc.name is None or not module_name.startswith(exc.name):
            raise  # the app itself imports something missing: its traceback says what
        raise AppLoadError(f"no module {module_name!r} in {_short(os.getcwd()) or '.'} "
                           "or on PYTHONPATH (run from the app's directory, or pass "
                           "--chdir / --pythonpath)") from None


def _pick(module: Any, where: str) -> Any:
    apps = _defined(module, App)
    if len(apps) == 1:
        return getattr(module, apps[0])
    in_apps = {id(s) for name in apps for s in getattr(module, name).servers}
    servers = [n for n in _defined(module, Server) if id(getattr(module, n)) not in in_apps]
    if not apps and len(servers) == 1:
        return getattr(module, servers[0])
    if apps or servers:
        names = ", ".join(apps or servers)
        hint = "" if apps else f", or serve them all: App({names})"
        raise AppLoadError(f"{where} defines several {'apps' if apps else 'servers'} "
                           f"({names}): name one, e.g. {module.__name__}:"
                           f"{(apps or servers)[0]}{hint}")
    application = getattr(module, "application", None)
    if callable(application):
        return application
    raise AppLoadError(f"{where} defines no Server, App or WSGI 'application'")


def _defined(module: Any, kind: type) -> list[str]:
    return [name for name, value in vars(module).items()
            if isinstance(value, kind) and not name.startswith("_")]


def _inventory(module: Any) -> str:
    apps, servers = _defined(module, App), _defined(module, Server)
    if apps:
        return "it defines App objects: " + ", ".join(apps)
    if servers:
        return "it defines Server objects: " + ", ".join(servers)
    return "it defines no Server or App"


def _app_frame(exc: BaseException) -> str:
    """``file:line`` of the app's innermost frame in ``exc``'s traceback."""
    where = "the app"
    for frame in traceback.extract_tb(exc.__traceback__):
        if not frame.filename.startswith((_PACKAGE_DIR, "<frozen")):
            where = f"{_short(frame.filename)}:{frame.lineno}"
    return where


def _short(path: str) -> str:
    """``path`` relative to the working directory when it is inside it."""
    try:
        return os.path.relpath(path) if not os.path.relpath(path).startswith("..") else path
    except ValueError:
        return path

