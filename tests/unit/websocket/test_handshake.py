"""The opening handshake: checks, the decision as data, the answers."""

from __future__ import annotations

import h11
import pytest

from geworker.errors import LocalProtocolError, RemoteProtocolError
from geworker.websocket.handshake import (
    Accept,
    Reject,
    WebSocketRequest,
    accept_answer,
    check_handshake,
    reject_answer,
)
from geworker.websocket.protocol import WebSocketPhase, WebSocketProtocol

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455, section 1.3
GOOD = [(b"Host", b"h"), (b"Upgrade", b"websocket"), (b"Connection", b"keep-alive, Upgrade"),
        (b"Sec-WebSocket-Key", KEY), (b"Sec-WebSocket-Version", b"13"),
        (b"Sec-WebSocket-Protocol", b"a, b"), (b"Sec-WebSocket-Protocol", b"c")]


def event(headers=GOOD, method=b"GET") -> h11.Request:
    return h11.Request(method=method, target=b"/chat?x=1", headers=headers)


def test_a_valid_handshake_passes_and_the_request_reads_it():
    check_handshake(event())
    request = WebSocketRequest(event(), ("10.0.0.1", 1))
    assert request.subprotocols == ["a", "b", "c"] and request.key == KEY
    assert request.path == "/chat" and request.decision is None


@pytest.mark.parametrize(("drop", "status"), [
    (b"upgrade", 426), (b"connection", 426), (b"sec-websocket-version", 426),
    (b"sec-websocket-key", 400)])
def test_missing_headers_are_refused_with_their_status(drop, status):
    headers = [(k, v) for k, v in GOOD if k.lower() != drop]
    with pytest.raises(RemoteProtocolError) as exc:
        check_handshake(event(headers))
    assert exc.value.response.startswith(b"HTTP/1.1 %d " % status)
    assert b"Connection: close\r\n" in exc.value.response


def test_decisions_are_data():
    request = WebSocketRequest(event())
    request.accept("b", {"X-A": "1"})
    assert request.decision == Accept("accept", "b", [(b"X-A", b"1")])
    kind, subprotocol, headers = request.decision  # still unpacks as the old tuple did
    assert (kind, subprotocol, headers) == ("accept", "b", [(b"X-A", b"1")])
    request.reject(401, "log in", [("X-B", "2")])
    assert request.decision == Reject("reject", 401, [(b"X-B", b"2")], b"log in")
    request.reject(403)
    assert request.decision.body is None  # the standard text, written by error_response
    with pytest.raises(LocalProtocolError):
        request.accept("zzz")
    with pytest.raises(LocalProtocolError):
        request.reject(200)
    with pytest.raises(LocalProtocolError):
        request.reject(403, headers={"X": "a\nb"})


def test_the_protocol_acts_on_the_decision():
    for decision, phase in ((None, WebSocketPhase.OPEN),
                            (Accept("accept", None, []), WebSocketPhase.OPEN),
                            (Reject("reject", 404, [], None), WebSocketPhase.CLOSED)):
        proto = WebSocketProtocol()
        proto.start(event())
        assert proto.decide(decision) == []
        assert proto.phase is phase
        answer = proto.data_to_send()
        assert answer.startswith(b"HTTP/1.1 101 " if phase is WebSocketPhase.OPEN
                                 else b"HTTP/1.1 404 Not Found\r\n")


def test_accept_answer_carries_the_rfc_accept_token():
    answer = accept_answer(KEY, "chat", "permessage-deflate", [(b"X-S", b"1")])
    assert answer == (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
                      b"\r\nSec-WebSocket-Protocol: chat\r\nSec-WebSocket-Extensions: "
                      b"permessage-deflate\r\nX-S: 1\r\n\r\n")


def test_reject_answer_keeps_the_callers_body():
    answer = reject_answer(403, [(b"X-Why", b"policy")], b"go away")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden\r\n") and answer.endswith(b"\r\n\r\ngo away")
    assert b"X-Why: policy\r\n" in answer and b"Content-Type" not in answer
    assert reject_answer(403).endswith(b"\r\n\r\nForbidden\n")
