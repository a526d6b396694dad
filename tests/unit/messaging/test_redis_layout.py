"""The Redis backend's URLs and the names of its keys and channels (no server needed)."""

from __future__ import annotations

import pytest

from geworker import ConfigurationError, Server
from geworker.messaging.backends import check_url
from geworker.messaging.redis_layout import Layout, RedisSettings, parse_url

from conftest import ROOT


def test_standalone_urls():
    s = parse_url("redis://127.0.0.1:6390/2")
    assert s == RedisSettings(cluster=False, tls=False, nodes=(("127.0.0.1", 6390),), db=2)
    assert parse_url("redis://cache").nodes == (("cache", 6379),)
    assert parse_url("redis://cache").db == 0
    assert parse_url("redis://[::1]:7000/1").nodes == (("::1", 7000),)
    assert parse_url("redis://h:1?db=3").db == 3


def test_credentials_are_percent_decoded_and_never_shown():
    s = parse_url("redis://app%40x:p%3Ass%2Fw@h:6379/0")
    assert (s.username, s.password) == ("app@x", "p:ss/w")
    assert s.redacted() == "redis://app%40x:***@h:6379/0"
    assert "p:ss" not in repr(s.redacted())
    s = parse_url("redis://:secret@h")  # AUTH with the password only
    assert (s.username, s.password) == (None, "secret")
    assert s.redacted() == "redis://:***@h:6379/0"
    options = s.connection_options()
    assert options == {"username": None, "password": "secret"}


def test_tls_urls_and_options():
    s = parse_url("rediss://h:6380/0?ssl_cert_reqs=none&ssl_ca_certs=/ca.pem")
    assert s.tls and not s.cluster
    options = s.connection_options()
    assert options["ssl"] is True and options["ssl_cert_reqs"] == "none"
    assert options["ssl_ca_certs"] == "/ca.pem" and options["ssl_check_hostname"] is False
    assert parse_url("rediss://h").connection_options()["ssl_check_hostname"] is True
    assert parse_url("rediss://h").redacted() == "rediss://h:6379/0"


def test_cluster_urls():
    s = parse_url("redis+cluster://a:7000,b:7001,[::1]:7002")
    assert s.cluster and not s.tls
    assert s.nodes == (("a", 7000), ("b", 7001), ("::1", 7002))
    assert s.redacted() == "redis+cluster://a:7000,b:7001,[::1]:7002"
    s = parse_url("rediss+cluster://u:p@a:7000?prefix=chat")
    assert s.cluster and s.tls and s.prefix == "chat" and s.username == "u"


def test_unix_socket_url():
    s = parse_url("unix:///run/redis/redis.sock?db=4")
    assert s.unix_path == "/run/redis/redis.sock" and s.db == 4 and s.nodes == ()
    assert s.redacted() == "unix:///run/redis/redis.sock?db=4"


@pytest.mark.parametrize(("url", "why"), [
    ("redis://h:0", "out of range"),
    ("redis://h:99999", "out of range"),
    ("redis://h:port", "not a port"),
    ("redis://h/abc", "not a number"),
    ("redis://a:1,b:2", "one host for a standalone"),
    ("redis+cluster://a:1/3", "one database"),
    ("redis://h?colour=red", "unknown option 'colour'"),
    ("redis://h?prefix=a{b}", "prefix="),
    ("redis://h?prefix=", "prefix="),
    ("rediss://h?ssl_cert_reqs=maybe", "ssl_cert_reqs='maybe'"),
    ("unix://relative.sock", "absolute socket path"),
    ("redis+cluster://a:1,,b:2", "an empty host"),
    ("redis://", "an empty host"),
])
def test_bad_urls_say_what_is_wrong(url, why):
    with pytest.raises(ConfigurationError, match="messaging=") as info:
        parse_url(url)
    assert why in str(info.value)


def test_the_setting_is_checked_where_it_is_given():
    assert check_url("local") == "local"
    assert check_url("redis://h:1/0") == "redis://h:1/0"
    with pytest.raises(ConfigurationError, match="out of range"):
        Server("text://127.0.0.1:0", messaging="redis://h:0")
    with pytest.raises(ConfigurationError, match="use 'local'"):
        check_url("memcached://h")


def test_a_nodes_keys_and_channel_share_one_slot():
    from redis.crc import key_slot

    layout = Layout()
    node = "0123456789ab"
    names = [layout.alive(node), layout.conns(node), layout.node_uids(node),
             layout.node_groups(node), layout.reaped(node), layout.reaping(node),
             layout.node_channel(node)]
    assert len(set(names)) == len(names)
    assert {key_slot(n.encode()) for n in names} == {key_slot(node.encode())}
    assert layout.alive(node) == "gw:{0123456789ab}"
    assert layout.node_channel(node) == "gw:to:{0123456789ab}"


def test_uids_and_groups_spread_over_slots_and_keep_keys_and_channels_apart():
    from redis.crc import key_slot

    layout = Layout("chat")
    assert layout.uid("ann") == "chat:u:{ann}" and layout.group("room") == "chat:g:{room}"
    assert layout.uid_channel("ann") == "chat:to-u:{ann}"
    assert layout.group_channel("room") == "chat:to-g:{room}"
    assert layout.all_channel == "chat:to-all" and layout.nodes == "chat:nodes"
    # A uid's key and channel sit together; a thousand uids use many slots.
    assert key_slot(layout.uid("ann").encode()) == key_slot(layout.uid_channel("ann").encode())
    slots = {key_slot(layout.uid(f"user{i}").encode()) for i in range(1000)}
    assert len(slots) > 900
    # A uid and a group of the same name are different keys and channels.
    assert layout.uid("x") != layout.group("x")
    assert layout.uid_channel("x") != layout.group_channel("x")
    # Names with braces or any other character stay distinct keys.
    assert len({layout.uid(n) for n in ["a}b", "a", "{a}", "a b", "ä"]}) == 5


def test_the_documented_figures_are_the_codes():
    from geworker.messaging import redis as backend
    from geworker.messaging.redis_client import COMMAND_TIMEOUT

    doc = " ".join((ROOT / "docs" / "messaging-redis.md").read_text().split())
    assert f"string, TTL {backend.LIVENESS_TTL} s" in doc
    assert f"refreshed every {backend.REFRESH:g} s" in doc
    assert f"at most **{backend.LIVENESS_TTL} s** after its last refresh" in doc
    backoff = f"after {backend.BACKOFF_FIRST:g} s, doubling to at most {backend.BACKOFF_CAP:g} s"
    assert backoff in doc
    assert f"within {COMMAND_TIMEOUT:g} s" in doc
    assert f"silent for {backend.SUBSCRIBER_TIMEOUT:g} s" in doc
    assert f"about every {backend.REAP_EVERY:g} s" in doc
    assert f"more than {backend.OUTBOX_BYTES >> 20} MiB wait" in doc
    layout = Layout()
    for name in (layout.alive("N"), layout.conns("N"), layout.uid("uid"), layout.group("group"),
                 layout.nodes, layout.node_channel("N"), layout.uid_channel("uid"),
                 layout.group_channel("group"), layout.all_channel):
        assert f"`{name}`" in doc, name


def test_without_redis_py_the_setting_says_what_to_install():
    import subprocess
    import sys

    code = """
import sys
sys.modules["redis"] = None  # as if redis-py were not installed
from geworker import ConfigurationError, Messenger, Server
for make in (lambda: Server("text://127.0.0.1:1", messaging="redis://h:1/0"),
             lambda: Messenger("redis://h:1/0")):
    try:
        make()
    except ConfigurationError as exc:
        print(exc)
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.count("needs redis-py: pip install 'geworker[redis]'") == 2, out
