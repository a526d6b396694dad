"""Autobahn TestSuite conformance cases, run by ``kosoku`` against a geworker echo server.

The server is real ``gunicorn -k geworker.Worker -w 2`` with a ``websocket://``
echo listener (messages up to 20 MiB for section 9; permessage-deflate on).
kosoku is the fuzzing client: one connection per case, two cases at a time.
Every selected case must pass (kosoku's ``passed``: OK, NON-STRICT or
INFORMATIONAL for both the messages and the closing handshake).

* Sections 1-7 and 10: every case.
* Section 9 (limits and performance): every case at full size; on this
  2-core machine it takes about 10 s.
* Sections 12 and 13 (permessage-deflate): each case sends 1000 messages,
  the big ones take 5-55 s each (about 16 minutes for the 216 cases, which
  all pass when run by hand), so a representative subset runs: for every
  data set of 12.x and every offer / accept combination of 13.x, the cases
  with 16, 64, 256 and 1024-byte messages (x.y.1-4) and with 8 KiB messages
  fragmented into 256-byte frames (x.y.11): 60 cases.

A summary per section is printed (``pytest -s`` shows it) and written to
``autobahn-summary.txt`` in the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import collections

import pytest

from conftest import Gunicorn, free_port

kosoku = pytest.importorskip("kosoku", reason="the kosoku conformance runner is not installed")

ECHO_APP = """
import os
from geworker import Server

server = Server(f"websocket://127.0.0.1:{os.environ['PORT']}", name="autobahn",
                websocket_max_message_size=20 * 1024 * 1024)

@server.on_message
def echo(conn, message):
    conn.send(message)
"""

COMPRESSION_SUBSET = [f"{section}.{group}.{case}"
                      for section, groups in (("12", range(1, 6)), ("13", range(1, 8)))
                      for group in groups for case in (1, 2, 3, 4, 11)]


@pytest.fixture(scope="module")
def echo_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("autobahn")
    port = free_port()
    g = Gunicorn(tmp, ECHO_APP, [], {"PORT": str(port)}, 2)
    try:
        g.wait_ready()
        g.summary = tmp / "autobahn-summary.txt"
        yield g, f"ws://127.0.0.1:{port}"
    finally:
        g.stop()
    g.check_log()


def run_cases(url: str, cases: list[str], timeout: float) -> list:
    async def run() -> list:
        try:
            return list(await asyncio.wait_for(
                kosoku.run_fuzzingclient(url, cases, None, concurrency=2), timeout))
        except kosoku.FailureError as failure:
            return list(failure.results)

    return asyncio.run(run())


def check(server: tuple[Gunicorn, str], cases: list[str], expected: int,
          timeout: float) -> None:
    g, url = server
    results = run_cases(url, cases, timeout)
    by_section: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in results:
        by_section[r.case_id.split(".")[0]][f"{r.behavior.value}/{r.behavior_close.value}"] += 1
    lines = [f"section {s}: {sum(c.values())} cases, {dict(c)}"
             for s, c in sorted(by_section.items(), key=lambda kv: int(kv[0]))]
    with open(g.summary, "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    failed = [f"{r.case_id}: {r.behavior.value}/{r.behavior_close.value} {r.result} "
              f"{r.result_close}" for r in results if not r.passed]
    assert not failed, "\n".join(failed)
    assert len(results) == expected, [r.case_id for r in results]
    assert g.proc.poll() is None
    assert "Traceback" not in g.log()


@pytest.mark.timeout(120)
def test_sections_1_to_7_and_10(echo_url):
    check(echo_url, ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"], 247, 100)


@pytest.mark.timeout(150)
def test_section_9_limits_and_performance(echo_url):
    check(echo_url, ["9.*"], 54, 130)


@pytest.mark.timeout(150)
def test_sections_12_13_compression_subset(echo_url):
    check(echo_url, COMPRESSION_SUBSET, len(COMPRESSION_SUBSET), 130)


def test_kosoku_runner_reports_a_failure(tmp_path):
    """The runner is not blind: a server that never echoes fails case 1.1.1."""
    port = free_port()
    mute = Gunicorn(tmp_path, ECHO_APP.replace("conn.send(message)", "pass"),
                    [], {"PORT": str(port)}, 1)
    try:
        mute.wait_ready()
        [result] = run_cases(f"ws://127.0.0.1:{port}", ["1.1.1"], 30)
        assert not result.passed
    finally:
        mute.stop()
    mute.check_log()
