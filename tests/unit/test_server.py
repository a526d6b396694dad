"""Declaring a server: the messages a mistake gets at declaration time."""

from __future__ import annotations

import functools

import pytest

from geworker import App, ConfigurationError, Server


def test_unknown_scheme_names_the_url_and_suggests():
    with pytest.raises(ConfigurationError) as err:
        Server("websockets://0.0.0.0:8080")
    message = str(err.value)
    assert message.startswith("websockets://0.0.0.0:8080: unknown scheme websockets://")
    assert "did you mean websocket://?" in message
    for scheme in ("https://", "wss://", "text://", "udp://", "ws://", "text+udp://",
                   "text+tls://"):
        assert scheme in message
    assert "\n" not in message


def test_unknown_scheme_without_a_close_match_suggests_nothing():
    with pytest.raises(ConfigurationError) as err:
        Server("zzzzqqq://0.0.0.0:1")
    assert "did you mean" not in str(err.value)


def test_unknown_transport_lists_the_transports():
    with pytest.raises(ConfigurationError, match=r"text\+sctp://0.0.0.0:1: unknown transport "
                                                 r"'sctp' \(use tcp, udp, unix or tls\)"):
        Server("text+sctp://0.0.0.0:1")


def test_callbacks_with_a_usable_signature_register():
    server = Server("text://127.0.0.1:1")

    @server.on_message
    def plain(conn, message):
        pass

    @server.on_message
    def star(*args):
        pass

    @server.on_connect
    def with_default(conn, extra=None):
        pass

    class Handler:
        def on_message(self, conn, message):
            pass

    server.on_message = Handler().on_message
    server.on_message = functools.partial(lambda ctx, conn, message: None, "ctx")
    server.on_message = print  # a builtin: no signature to check
    assert server.callbacks["on_message"] is print
    server.on_message = None
    assert "on_message" not in server.callbacks


@pytest.mark.parametrize(("name", "func", "expected"), [
    ("on_message", lambda message: None, "on_message(conn, message)"),
    ("on_connect", lambda: None, "on_connect(conn)"),
    ("on_close", lambda conn, *, flag: None, "on_close(conn)"),
    ("on_error", lambda conn: None, "on_error(conn, exc)"),
    ("on_worker_start", lambda worker, other: None, "on_worker_start(worker)"),
    ("on_websocket_connect", lambda conn: None, "on_websocket_connect(conn, request)"),
])
def test_a_callback_with_the_wrong_signature_is_refused(name, func, expected):
    server = Server("text://127.0.0.1:1")
    with pytest.raises(ConfigurationError) as err:
        getattr(server, name)(func)
    message = str(err.value)
    assert message.startswith(f"{name} callback <lambda>(")
    assert f"{__file__}:" in message and message.endswith(f"cannot be called as {expected}")
    assert name not in server.callbacks


def test_a_decorated_callback_reports_where_it_is_defined():
    def logged(func):
        @functools.wraps(func)
        def wrapper(msg):
            return func(msg)
        return wrapper

    @logged
    def handle(msg):
        pass

    server = Server("text://127.0.0.1:1")
    with pytest.raises(ConfigurationError) as err:
        server.on_message(handle)
    line = handle.__wrapped__.__code__.co_firstlineno
    assert f"{__file__}:{line}" in str(err.value)


def test_a_callback_must_be_callable():
    server = Server("text://127.0.0.1:1")
    with pytest.raises(ConfigurationError, match="on_close must be a function"):
        server.on_close = "not a function"


@pytest.mark.parametrize("option, value, message", [
    ("heartbeat_interval", 0, "heartbeat_interval must be positive or None"),
    ("heartbeat_missed_limit", 0, "heartbeat_missed_limit must be at least 1"),
    ("send_queue_timeout", -1, "send_queue_timeout must be positive or None"),
    ("socket_send_buffer", 0, "socket_send_buffer must be positive or None"),
    ("tcp_user_timeout", 0, "tcp_user_timeout must be positive or None"),
])
def test_heartbeat_and_slow_consumer_options_are_checked(option, value, message):
    with pytest.raises(ConfigurationError, match=message):
        Server("text://127.0.0.1:9", **{option: value})


def test_messaging_setting_is_checked_and_shared_by_an_app():
    with pytest.raises(ConfigurationError, match="use 'local'"):
        Server("text://127.0.0.1:9", messaging="kafka://x")
    a = Server("text://127.0.0.1:9", name="a", messaging="redis://127.0.0.1:6379/0")
    b = Server("text://127.0.0.1:10", name="b")
    assert App(a, b).messaging == "redis://127.0.0.1:6379/0"
    c = Server("text://127.0.0.1:11", name="c", messaging="local")
    with pytest.raises(ConfigurationError, match="different messaging backends"):
        App(a, c)
    assert App(a, c, messaging="local").messaging == "local"
