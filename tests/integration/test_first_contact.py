"""What a new user sees for each common mistake: one clear line, exit 3, no traceback.

Each app runs under real gunicorn (and the ``geworker`` command where it
matters); the assertions are on what the user reads.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from conftest import ROOT, LineClient, free_port, wait_until
from support.ops import run_cli

BOOT_TIMEOUT = 60


def run_gunicorn(tmp_path, source: str, *args: str, target: str = "app:server",
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "app.py").write_text(textwrap.dedent(source))
    full_env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}", **(env or {}))
    return subprocess.run([sys.executable, "-m", "gunicorn", "-k", "geworker.Worker",
                           "--no-control-socket", *args, target], cwd=tmp_path, env=full_env,
                          capture_output=True, text=True, timeout=BOOT_TIMEOUT)


def one_line_failure(result: subprocess.CompletedProcess[str], line: str) -> None:
    assert result.returncode == 3, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert "Booting worker" not in result.stderr  # it failed before any worker
    assert f"geworker: {line}" in result.stderr.splitlines(), result.stderr


def test_wrong_scheme(tmp_path):
    port = free_port()
    result = run_gunicorn(tmp_path, f"""
        from geworker import Server
        server = Server("websockets://127.0.0.1:{port}")
    """)
    assert result.returncode == 3 and "Traceback" not in result.stderr, result.stderr
    [line] = [x for x in result.stderr.splitlines() if "unknown scheme" in x]
    assert line.startswith(f"geworker: app.py:3: websockets://127.0.0.1:{port}: unknown scheme "
                           "websockets:// (did you mean websocket://?); known: ")
    for form in ("https://", "wss://", "text+udp://", "text+tls://"):
        assert form in line


def test_wrong_scheme_with_debug_shows_the_traceback(tmp_path):
    result = run_gunicorn(tmp_path, """
        from geworker import Server
        server = Server("websockets://127.0.0.1:1")
    """, "--log-level", "debug")
    assert result.returncode == 3
    assert "Traceback" in result.stderr and "unknown scheme" in result.stderr


def test_callback_with_the_wrong_signature(tmp_path):
    result = run_gunicorn(tmp_path, """
        from geworker import Server
        server = Server("text://127.0.0.1:1")

        @server.on_message
        def on_message(msg):
            pass
    """)
    one_line_failure(result, f"app.py:5: on_message callback on_message(msg) at "
                             f"{tmp_path / 'app.py'}:5 cannot be called as "
                             "on_message(conn, message)")


def test_port_in_use_names_the_listener_at_once(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        t0 = time.monotonic()
        result = run_gunicorn(tmp_path, f"""
            from geworker import Server
            server = Server("text://127.0.0.1:{port}")
        """)
        elapsed = time.monotonic() - t0
    one_line_failure(result, f"text://127.0.0.1:{port} is already in use by another process "
                             "(set GEWORKER_BIND_RETRY=1 to let gunicorn retry)")
    assert "Connection in use" not in result.stderr
    assert elapsed < 4  # gunicorn alone retries for 5 s


def test_port_in_use_through_the_geworker_command(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        (tmp_path / "app.py").write_text(
            f"from geworker import Server\nserver = Server('text://127.0.0.1:{port}')\n")
        result = run_cli(tmp_path, "start", "app:server", timeout=BOOT_TIMEOUT)
    assert result.returncode == 3, result.stderr
    assert f"text://127.0.0.1:{port} is already in use by another process" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_app_object_lists_the_servers(tmp_path):
    result = run_gunicorn(tmp_path, """
        from geworker import Server
        srv = Server("text://127.0.0.1:1")
    """)
    one_line_failure(result, "app.py defines no 'server'; it defines Server objects: srv")


def test_a_bare_module_name_serves_its_only_server(gunicorn):
    port = free_port()
    gunicorn(f"""
from geworker import Server
srv = Server("text://127.0.0.1:{port}")

@srv.on_message
def echo(conn, message):
    conn.send(message)
""", workers=1, target="app")
    client = LineClient(port)
    assert client.request("bare") == "bare"
    client.close()


def test_syntax_error_stays_one_clear_line(tmp_path):
    result = run_gunicorn(tmp_path, "from geworker import Server\nserver = Server(\n")
    one_line_failure(result, "app.py, line 2: SyntaxError: '(' was never closed: "
                             "server = Server(")


def test_banner_names_every_declared_listener(gunicorn):
    port, udp = free_port(), free_port()
    g = gunicorn(f"""
from geworker import Server
server = Server("text://127.0.0.1:{port}", "udp://127.0.0.1:{udp}")
""", workers=1)
    banner = [line for line in g.log().splitlines() if "Listening at:" in line]
    assert len(banner) == 1, g.log()
    assert f"Listening at: text://127.0.0.1:{port} udp://127.0.0.1:{udp} ({g.pid})" in banner[0]


def test_worker_connections_default_follows_the_open_file_limit(gunicorn):
    port = free_port()
    g = gunicorn(f"from geworker import Server\nserver = Server('text://127.0.0.1:{port}')\n",
                 workers=1)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert f"(worker_connections={hard - 256})" in g.log(), g.log()


def test_a_client_beyond_worker_connections_waits_and_is_served_later(gunicorn):
    port = free_port()
    g = gunicorn(f"""
from geworker import Server
server = Server("text://127.0.0.1:{port}", park_after=None)

@server.on_message
def echo(conn, message):
    conn.send(message)
""", workers=1, args=["--worker-connections", "3"])
    first = [LineClient(port) for _ in range(3)]
    for i, c in enumerate(first):
        assert c.request(f"c{i}") == f"c{i}"
    late = socket.create_connection(("127.0.0.1", port), timeout=0.5)  # the backlog holds it
    late.sendall(b"late\n")
    with pytest.raises(socket.timeout):
        late.recv(100)
    wait_until(lambda: "reached worker_connections=3" in g.log(), 5, what="the cap warning")

    def cap_counted() -> bool:  # what `geworker status --json` reads, per worker
        for snapshot in g.tmp.glob(".geworker/*/workers/*.json"):
            with contextlib.suppress(ValueError, OSError):
                if json.loads(snapshot.read_text())["counters"]["errors"].get(
                        "connection_limit", 0) >= 1:
                    return True
        return False

    wait_until(cap_counted, 10, what="connection_limit in the status snapshot")
    first[0].close()
    late.settimeout(5)
    assert late.recv(100) == b"late\n"
    wait_until(lambda: "below worker_connections=3 again" in g.log(), 5, what="the recovery")
    late.close()
    for c in first[1:]:
        c.close()


TWO_SERVERS = """
import os
from geworker import App, Server

gateway = Server("text://127.0.0.1:{gateway}", name="gateway")
admin = Server("text://127.0.0.1:{admin}", name="admin")
started = []

@gateway.on_worker_start
def gateway_start(worker):
    started.append("gateway")

@admin.on_worker_start
def admin_start(worker):
    started.append("admin")

@gateway.on_message
def chat(conn, message):
    if message == "servers":
        conn.send(",".join(started) + " " + conn.server.name)
    elif message.startswith("all "):
        gateway.broadcast(message[4:], all_workers=True)
    else:
        conn.send("gateway: " + message)

@admin.on_message
def command(conn, message):
    conn.send(f"admin: {{message}} ({{len(admin.connections)}} admin, "
              f"{{len(gateway.connections)}} gateway here, pid {{os.getpid()}})")

app = App(gateway, admin, name="chat")
"""


def test_an_app_of_two_servers_each_with_its_callbacks(gunicorn):
    gw, adm = free_port(), free_port()
    gunicorn(TWO_SERVERS.format(gateway=gw, admin=adm), workers=2, target="app:app")
    g1 = LineClient(gw)
    a1 = LineClient(adm)
    assert g1.request("hi") == "gateway: hi"
    assert g1.request("servers") == "gateway,admin gateway"
    assert a1.request("x").startswith("admin: x (1 admin, ")
    # A broadcast of one server reaches its connections in every worker, never the other's.
    gateways = [g1, *(LineClient(gw) for _ in range(5))]
    for c in gateways:
        assert c.request("ping") == "gateway: ping"
    g1.send("all news")
    for c in gateways:
        assert c.recv() == "news"
    a1.sock.settimeout(0.3)
    with pytest.raises(socket.timeout):
        a1.recv()
    for c in (*gateways, a1):
        c.close()


def test_worker_count_and_local_address_in_on_close(gunicorn, tmp_path):
    port = free_port()
    out = tmp_path / "seen.txt"
    gunicorn(f"""
from geworker import Server
server = Server("text://127.0.0.1:{port}")

@server.on_worker_start
def started(worker):
    with open({str(out)!r}, "a") as f:
        f.write(f"count={{worker.count}} index={{worker.index}}\\n")

@server.on_close
def closed(conn):
    with open({str(out)!r}, "a") as f:
        f.write(f"local={{conn.local_address}}\\n")
""", workers=2)
    client = LineClient(port)
    client.send("x")
    client.close()
    wait_until(lambda: "local=" in out.read_text(), 5, what="on_close")
    seen = out.read_text().splitlines()
    assert sorted(line for line in seen if line.startswith("count")) == [
        "count=2 index=0", "count=2 index=1"]
    assert f"local=('127.0.0.1', {port})" in seen


def test_a_worker_at_its_connection_cap_waits_instead_of_spinning(gunicorn):
    port = free_port()
    g = gunicorn(f"""
from geworker import Server
server = Server("text://127.0.0.1:{port}")

@server.on_message
def echo(conn, message):
    conn.send(message)
""", workers=2, args=["--worker-connections", "50"])
    clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(150)]
    try:
        wait_until(lambda: g.log().count("reached worker_connections=50") == 2, 10,
                   what="both workers at the cap")
        workers = g.worker_pids()

        def cpu() -> float:
            total = 0.0
            for pid in workers:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rpartition(")")[2].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            return total

        before, t0 = cpu(), time.monotonic()
        time.sleep(2.0)
        share = (cpu() - before) / (time.monotonic() - t0)
        # Retrying the accept every 50 ms costs next to nothing; a spinning gate costs a core.
        assert share < 0.3, f"the workers at their cap used {share:.0%} of a core"
    finally:
        for c in clients:
            c.close()
