"""Names, client ids and sessions: what messaging accepts from the app."""

from __future__ import annotations

import pytest

from geworker import Messenger, messaging
from geworker.errors import LocalProtocolError
from geworker.transport.membership import (
    MAX_NAME_LENGTH,
    MAX_SESSION_BYTES,
    NODE_LENGTH,
    Session,
    check_name,
    parse_client_id,
)


def test_names_are_short_non_empty_strings():
    assert check_name("uid", "u" * MAX_NAME_LENGTH) == "u" * MAX_NAME_LENGTH
    for bad, message in [(42, "a uid is a str, not int"), ("", "1 to 256"),
                         ("u" * (MAX_NAME_LENGTH + 1), "not 257")]:
        with pytest.raises(LocalProtocolError, match=message):
            check_name("uid", bad)


def test_client_ids_parse_only_when_well_formed():
    assert parse_client_id("0123456789ab1f") == ("0123456789ab", 31)
    for bad in ["0123456789ab", "0123456789abzz", None, 12, "x" * (NODE_LENGTH + 17)]:
        assert parse_client_id(bad) is None


def test_sessions_hold_json_and_stay_valid_after_a_refused_change():
    session = Session({"name": "ann"})
    session["tags"] = ["a"]
    with pytest.raises(LocalProtocolError, match="JSON values only"):
        session["sock"] = object()
    with pytest.raises(LocalProtocolError, match="JSON values only"):
        session.update(bad={1, 2})
    assert session == {"name": "ann", "tags": ["a"]}
    with pytest.raises(LocalProtocolError, match=f"at most {MAX_SESSION_BYTES} bytes"):
        session["big"] = "x" * MAX_SESSION_BYTES
    assert "big" not in session
    with pytest.raises(LocalProtocolError, match="JSON values only"):
        Session({"when": object()})


def test_outside_a_worker_the_api_reaches_this_process_only_and_checks_its_arguments():
    # No worker here: sends to other processes have nowhere to go, queries are this process's.
    assert messaging.send_to_client("0123456789abff", "hi") is False
    assert messaging.send_to_uid("ann", "hi") is True
    assert messaging.online_count() == 0
    assert messaging.group_members("room") == {}
    assert messaging.is_online("not-an-id") is False
    with pytest.raises(LocalProtocolError, match="a group is a str"):
        messaging.send_to_group(3, "hi")
    with pytest.raises(LocalProtocolError, match="a uid has 1 to 256"):
        messaging.is_uid_online("")
    with pytest.raises(LocalProtocolError, match="at most"):
        messaging.send_to_all(b"x" * (messaging.MAX_MESSAGE + 1))
    with pytest.raises(LocalProtocolError, match="JSON values only"):
        messaging.set_session("0123456789abff", {"x": object()})
    with pytest.raises(LocalProtocolError, match="exclude holds client ids"):
        messaging.send_to_all("hi", exclude=[1])


def test_a_messenger_needs_a_running_instance(tmp_path, monkeypatch):
    from geworker.errors import ConfigurationError

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GEWORKER_RUN_DIR", raising=False)
    with pytest.raises(ConfigurationError, match="no running geworker instance"):
        Messenger(app="chat:app")
    with pytest.raises(ConfigurationError, match="no running geworker instance"):
        Messenger(run_dir=tmp_path / "nothing")
