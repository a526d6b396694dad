"""The membership observer: told of every presence change of a message connection."""

from __future__ import annotations

import gevent
import pytest

from geworker.transport.membership import Session, membership


@pytest.fixture
def seen():
    calls: list[int] = []
    membership.observer = lambda conn: calls.append(conn.id)
    yield calls
    membership.observer = None


def test_every_change_of_a_connection_is_observed(app, seen):
    app.listen(park_after=None).echo()
    conn, peer = app.connect()
    assert seen == [conn.id]  # opened
    steps = [
        lambda: conn.bind_uid("ann"),
        lambda: conn.join("room"),
        lambda: conn.leave("room"),
        lambda: conn.unbind_uid(),
        lambda: conn.session.__setitem__("name", "Ann"),
        lambda: conn.session.update(age=3),
        lambda: conn.session.pop("age"),
        lambda: conn.session.__delitem__("name"),
        lambda: conn.session.setdefault("k", 1),
        lambda: conn.session.__ior__({"j": 2}),
        lambda: conn.session.popitem(),
        lambda: conn.session.clear(),
        lambda: setattr(conn, "session", {"whole": True}),
    ]
    for i, step in enumerate(steps):
        before = len(seen)
        step()
        assert len(seen) > before, f"step {i} was not observed"
    conn.join("g")
    before = len(seen)
    assert membership.ungroup("g") == 1
    assert len(seen) == before + 1
    before = len(seen)
    conn.close()
    assert peer.eof()
    gevent.sleep(0.01)
    assert seen[before:] == [conn.id]  # closed


def test_no_change_no_call_and_a_refused_change_is_not_observed(app, seen):
    app.listen(park_after=None).echo()
    conn, _ = app.connect()
    conn.bind_uid("ann")
    conn.join("room")
    before = len(seen)
    conn.bind_uid("ann")  # the same uid
    conn.join("room")     # already in it
    conn.leave("other")   # not in it
    with pytest.raises(Exception, match="JSON"):
        conn.session["bad"] = object()
    assert len(seen) == before
    assert "bad" not in conn.session


def test_a_session_owned_by_another_connection_is_copied(app, seen):
    app.listen(park_after=None).echo()
    first, _ = app.connect()
    second, _ = app.connect()
    first.session["a"] = 1
    second.session = first.session
    assert second.session is not first.session and second.session == {"a": 1}
    before = len(seen)
    second.session["b"] = 2
    assert seen[before:] == [second.id] and "b" not in first.session
    assert Session({"x": 1}).owner is None
