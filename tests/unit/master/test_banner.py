"""The start banner names the declared listeners (the integration test checks gunicorn's)."""

from __future__ import annotations

import logging

from geworker.master.banner import install


def test_banner_lists_urls_and_leaves_other_lines(caplog):
    install(["text://127.0.0.1:1", "udp://127.0.0.1:2"], "test.banner")
    install(["text://127.0.0.1:1", "udp://127.0.0.1:2"], "test.banner")  # replaces, no double
    log = logging.getLogger("test.banner")
    assert len(log.filters) == 1
    with caplog.at_level(logging.INFO, logger="test.banner"):
        log.info("Listening at: %s (%s)", "http://127.0.0.1:1", 42)
        log.info("Listening at: %s", "http://127.0.0.1:1")
        log.info("Booting worker with pid: %s", 43)
    assert caplog.messages == [
        "Listening at: text://127.0.0.1:1 udp://127.0.0.1:2 (42)",
        "Listening at: text://127.0.0.1:1 udp://127.0.0.1:2",
        "Booting worker with pid: 43",
    ]
