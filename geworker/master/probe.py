"""Import an app in a throwaway process and print its declared listeners as JSON.

gunicorn's master must not import the application (it would run stale code
after ``HUP`` and escape gevent's monkey patching), yet it has to bind the
addresses the application declares. The master runs::

    python -m geworker.master.probe module:server

and reads the last line, ``GEWORKER-PROBE {...}``. It is also the pre-flight
check before a safe reload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MARKER", "PROBE_ENV", "TRACEBACK_ENV", "ProbeError", "describe_app", "probe_app"]

MARKER = "GEWORKER-PROBE "
#: Set in the probe's environment: the app is imported only to read its listeners.
PROBE_ENV = "GEWORKER_PROBE"
#: Set to 1 (``--log-level debug`` does) to see the traceback behind a declaration error.
TRACEBACK_ENV = "GEWORKER_TRACEBACK"
#: The probe's exit code for a mistake in the app's declarations.
EXIT_DECLARATION = 3


class ProbeError(Exception):
    """The application could not be imported, or is not usable."""


def describe_app(app_uri: str) -> dict[str, Any]:
    """Import ``app_uri`` here and describe it (runs inside the probe process).

    Raises:
        AppLoadError: for a mistake in the app's declarations (one line).
    """
    from ..loader import load_app, servers_of
    from ..server import App, Server

    app = load_app(app_uri)
    if not isinstance(app, (Server, App)):
        return {"kind": "wsgi", "listeners": []}
    servers = servers_of(app)
    return {"kind": "server", "name": app.name, "servers": [s.name for s in servers],
            "listeners": [{**lnr.describe(), "server": server.name}
                          for server in servers for lnr in server.listeners]}


def probe_app(app_uri: str, cwd: str | None = None, pythonpath: Sequence[str] = (),
              timeout: float = 60.0, environ: Mapping[str, str] | None = None,
              ) -> dict[str, Any]:
    """Run :func:`describe_app` in a subprocess and return its result.

    ``environ`` replaces this process's environment (``geworker reload``
    passes the running master's).

    Raises:
        ProbeError: with the subprocess's error output when the import fails.
    """
    cwd = cwd or os.getcwd()
    env = dict(os.environ if environ is None else environ)
    paths = [cwd, *pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env[PROBE_ENV] = "1"  # lets an app skip import-time side effects when only probed
    try:
        proc = subprocess.run([sys.executable, "-m", "geworker.master.probe", app_uri], cwd=cwd,
                              env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ProbeError(f"importing {app_uri!r} took more than {timeout:.0f} s") from None
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(MARKER) and proc.returncode == 0:
            return json.loads(line[len(MARKER):])  # type: ignore[no-any-return]
    detail = proc.stderr.strip() or proc.stdout.strip() or f"exit code {proc.returncode}"
    if proc.returncode == EXIT_DECLARATION and "\n" not in detail:
        raise ProbeError(detail)  # the loader's one line says it all
    raise ProbeError(f"cannot load {app_uri!r}:\n{detail}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m geworker.master.probe APP_URI``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m geworker.master.probe module:server", file=sys.stderr)
        return 2
    from ..loader import AppLoadError

    try:
        description = describe_app(args[0])
    except AppLoadError as exc:  # a mistake in the declarations: one line, no traceback
        if os.environ.get(TRACEBACK_ENV) == "1":
            import traceback

            traceback.print_exc()
        print(exc, file=sys.stderr)
        return EXIT_DECLARATION
    except Exception as exc:  # the app's own failure: its traceback says where
        import traceback

        traceback.print_exc()
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(MARKER + json.dumps(description), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
