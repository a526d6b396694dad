"""The busy-address check the master runs before gunicorn binds."""

from __future__ import annotations

import socket

from geworker.master.ports import RETRY_ENV, busy_listeners


def listener(url: str, bind: str, transport: str = "tcp") -> dict[str, str]:
    return {"url": url, "bind": bind, "transport": transport}


def test_a_listening_tcp_port_is_reported_by_url():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        declared = [listener(f"text://127.0.0.1:{port}", f"127.0.0.1:{port}")]
        assert busy_listeners(declared, {}) == [
            f"text://127.0.0.1:{port} is already in use by another process"]
        assert busy_listeners(declared, {RETRY_ENV: "1"}) == []
        assert busy_listeners(declared, {"GUNICORN_FD": "5"}) == []
    assert busy_listeners(declared, {}) == []  # closed: free again


def test_udp_and_unix():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        declared = [listener(f"udp://127.0.0.1:{port}", f"127.0.0.1:{port}", "udp")]
        assert busy_listeners(declared, {}) == [
            f"udp://127.0.0.1:{port} is already in use by another process"]


def test_unix_socket_with_a_listener_is_busy_a_stale_file_is_not(tmp_path):
    path = tmp_path / "app.sock"
    declared = [listener(f"text+unix://{path}", f"unix:{path}", "unix")]
    with socket.socket(socket.AF_UNIX) as holder:
        holder.bind(str(path))
        holder.listen()
        assert busy_listeners(declared, {}) == [
            f"text+unix://{path} is already in use by another process"]
    assert path.exists() and busy_listeners(declared, {}) == []
