"""Sans-IO tests of WebSocketClientProtocol: wired back to back with the server's protocol
(and with wsproto's server mode), bytes only, no socket."""

from __future__ import annotations

import struct
import zlib

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Ping,
    RejectConnection,
    RejectData,
    TextMessage,
)
from wsproto.events import Request as WSRequest
from wsproto.extensions import PerMessageDeflate

from geworker.errors import HandshakeError, LocalProtocolError
from geworker.websocket.client import MAX_REFUSAL_BODY, WebSocketClientProtocol, WebSocketResponse
from geworker.websocket.protocol import CloseCode, WebSocketPhase, WebSocketProtocol

OPEN, CLOSED = WebSocketPhase.OPEN, WebSocketPhase.CLOSED


def pair(client: WebSocketClientProtocol | None = None, server: WebSocketProtocol | None = None,
         subprotocol: str | None = None, **handshake):
    """A client and a server protocol with the handshake done; returns what came with the 101."""
    client = client or WebSocketClientProtocol()
    server = server or WebSocketProtocol()
    handshake.setdefault("host", "example.com")
    [request] = server.receive_data(client.handshake(**handshake))
    server.accept(subprotocol)
    received = client.receive_data(server.data_to_send())
    assert isinstance(received[0], WebSocketResponse)
    return client, server, request, received


def unmasked(first: int, payload: bytes) -> bytes:
    """A server frame built by hand (what the server's encoder would not send)."""
    n = len(payload)
    if n < 126:
        return bytes((first, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", first, 126, n) + payload
    return struct.pack("!BBQ", first, 127, n) + payload


def test_handshake_request_carries_target_subprotocols_headers_and_the_deflate_offer():
    client = WebSocketClientProtocol()
    server = WebSocketProtocol()
    data = client.handshake("example.com:8080", "/chat?room=1", ["chat.v2", "chat.v1"],
                            [(b"Origin", b"https://example.com"), (b"X-Token", b"t")])
    [request] = server.receive_data(data)
    assert request.path == "/chat" and request.query["room"] == "1"
    assert request.headers["host"] == "example.com:8080"
    assert request.headers["origin"] == "https://example.com"
    assert request.headers["x-token"] == "t"
    assert request.subprotocols == ["chat.v2", "chat.v1"]
    assert request.extensions[0].startswith("permessage-deflate")
    with pytest.raises(LocalProtocolError):
        client.handshake("example.com")


def test_accepted_handshake_gives_the_response_then_the_messages_sent_with_it():
    client = WebSocketClientProtocol()
    server = WebSocketProtocol()
    [_request] = server.receive_data(client.handshake("h", "/", ["chat"]))
    server.accept("chat", [(b"X-Hello", b"world")])
    answer = server.data_to_send() + server.encode("first") + server.encode(b"\x00second")
    # byte by byte: the answer and the frames may arrive in any pieces
    received = []
    for i in range(len(answer)):
        received += client.receive_data(answer[i:i + 1])
    response, *messages = received
    assert response == client.response
    assert response.subprotocol == "chat" and client.subprotocol == "chat"
    assert response.extensions == ["permessage-deflate"]
    assert response.header("x-hello") == "world" and response.header("nope") is None
    assert messages == ["first", b"\x00second"]
    assert client.phase is OPEN and client.is_open


def test_messages_both_ways_text_binary_large_and_fragmented():
    client, server, _, _ = pair()
    assert server.receive_data(client.encode("héllo")) == ["héllo"]
    big = bytes(range(256)) * 4096  # 1 MiB
    assert server.receive_data(client.encode(big)) == [big]
    assert client.receive_data(server.encode(big)) == [big]
    # a fragmented message from the server (built by hand, uncompressed)
    client2, _, _, _ = pair(WebSocketClientProtocol(compression=False))
    parts = unmasked(0x01, b"frag") + unmasked(0x89, b"p") + unmasked(0x00, b"men")
    parts += unmasked(0x80, b"ted")
    assert client2.receive_data(parts) == ["fragmented"]
    assert client2.data_to_send()[:1] == b"\x8a"  # the ping in between got its pong


def test_client_frames_are_masked_and_server_frames_must_not_be():
    client, _server, _, _ = pair(WebSocketClientProtocol(compression=False))
    data = client.encode(b"abc")
    assert data[1] & 0x80  # MASK bit
    key = b"\x01\x02\x03\x04"
    masked = b"\x82\x83" + key + bytes(b ^ k for b, k in zip(b"abc", key, strict=False))
    assert client.receive_data(masked) == []
    assert client.closed and client.close_code == CloseCode.PROTOCOL_ERROR


def test_permessage_deflate_compresses_both_ways():
    client, server, _request, received = pair()
    assert received[0].extensions == ["permessage-deflate"]
    text = "compress me " * 1000
    data = client.encode(text)
    assert data[0] & 0x40 and len(data) < len(text) // 10  # RSV1, compressed
    assert server.receive_data(data) == [text]
    back = server.encode(text)
    assert back[0] & 0x40
    assert client.receive_data(back) == [text]


def test_no_compression_when_not_offered_or_not_accepted():
    client, _, request, received = pair(WebSocketClientProtocol(compression=False))
    assert request.extensions == [] and received[0].extensions == []
    client, _, _, received = pair(server=WebSocketProtocol(compression=False))
    assert received[0].extensions == []
    assert not client.encode("x" * 100)[0] & 0x40


def test_inflating_is_bounded_for_the_client_too():
    limit = 64 * 1024
    client, _server, _, _ = pair(WebSocketClientProtocol(max_message_size=limit))
    # one small compressed frame that inflates far past the limit
    deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = deflater.compress(b"\0" * (10 * limit)) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert len(payload) < 2000
    assert client.receive_data(unmasked(0xC2, payload[:-4])) == []
    assert client.close_code == CloseCode.MESSAGE_TOO_BIG and client.closed


@pytest.mark.parametrize("server_takeover", [True, False])
def test_the_client_inflates_by_the_servers_context_rule(server_takeover):
    # The client inflates the server's messages: server_no_context_takeover
    # decides whether it starts afresh, not client_no_context_takeover (which
    # is about what the client compresses). A server that keeps its context
    # while asking the client not to refers back to earlier messages.
    client = WebSocketClientProtocol()
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.handshake("h"))
    next(server.events())
    ext = PerMessageDeflate(client_no_context_takeover=True,
                            server_no_context_takeover=server_takeover)
    client.receive_data(server.send(AcceptConnection(extensions=[ext])))
    text = "the same long text, again and again " * 10
    sizes = []
    for _ in range(3):
        data = server.send(TextMessage(text))
        sizes.append(len(data))
        assert client.receive_data(data) == [text]
    assert (sizes[1] < sizes[0]) is not server_takeover  # (it did refer back, or not)


def test_a_message_past_max_message_size_closes_1009():
    client, server, _, _ = pair(WebSocketClientProtocol(max_message_size=1000, compression=False))
    assert client.receive_data(server.encode(b"x" * 1000)) == [b"x" * 1000]
    assert client.receive_data(server.encode(b"x" * 1001)) == []
    assert client.close_code == CloseCode.MESSAGE_TOO_BIG
    assert client.data_to_send()[0] == 0x88  # the close frame


def test_ping_pong_and_client_ping():
    client, server, _, _ = pair()
    assert client.receive_data(server.ping(b"are you there")) == []
    pong = client.data_to_send()
    assert pong[0] == 0x8A  # a pong, masked
    assert server.receive_data(pong) == []  # pongs are no messages
    assert server.receive_data(client.ping(b"me")) == []
    assert client.receive_data(server.data_to_send()) == []  # the server's pong


def test_close_handshake_started_by_the_client_and_by_the_server():
    client, server, _, _ = pair()
    assert server.receive_data(client.close(4000, "bye")) == []
    assert server.close_code == 4000 and server.close_reason == "bye" and server.closed
    assert client.receive_data(server.data_to_send()) == []  # the echo
    assert client.closed and client.close_code == 4000 and not client.is_open
    assert client.encode("late") == b""  # nothing is sent after a close
    client, server, _, _ = pair()
    assert client.receive_data(server.close(4001, "server says bye")) == []
    assert client.close_code == 4001 and client.close_reason == "server says bye"
    assert client.closed
    server.receive_data(client.data_to_send())
    assert server.closed


def test_invalid_utf8_text_from_the_server_closes_1007():
    client, _, _, _ = pair(WebSocketClientProtocol(compression=False))
    assert client.receive_data(unmasked(0x81, b"\xff\xfe")) == []
    assert client.close_code == CloseCode.INVALID_DATA


def test_refusal_raises_with_status_headers_and_body():
    client = WebSocketClientProtocol()
    server = WebSocketProtocol()
    [_request] = server.receive_data(client.handshake("h"))
    server.reject(403, [(b"X-Reason", b"test")], b"go away")
    with pytest.raises(HandshakeError) as refused:
        client.receive_data(server.data_to_send())
    error = refused.value
    assert error.status == 403 and error.body == b"go away"
    assert (b"x-reason", b"test") in error.headers
    assert "403" in str(error) and "go away" in str(error)
    assert client.phase is CLOSED and client.closed


def test_refusal_with_a_body_until_close_and_a_huge_body():
    client = WebSocketClientProtocol()
    wsserver = WSConnection(ConnectionType.SERVER)
    wsserver.receive_data(client.handshake("h"))
    assert isinstance(next(wsserver.events()), WSRequest)
    head = b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n"
    assert client.receive_data(head + b"x" * (MAX_REFUSAL_BODY + 10)) == []
    with pytest.raises(HandshakeError) as refused:
        client.connection_lost()  # the body ran until the close
    assert refused.value.status == 500 and len(refused.value.body) == MAX_REFUSAL_BODY
    # wsproto's own refusal events, body in two pieces
    client = WebSocketClientProtocol()
    wsserver = WSConnection(ConnectionType.SERVER)
    wsserver.receive_data(client.handshake("h"))
    next(wsserver.events())
    data = wsserver.send(RejectConnection(status_code=401, headers=[(b"content-length", b"4")],
                                          has_body=True))
    assert client.receive_data(data) == []
    data = wsserver.send(RejectData(data=b"no", body_finished=False))
    assert client.receive_data(data) == []
    with pytest.raises(HandshakeError) as refused:
        client.receive_data(wsserver.send(RejectData(data=b"pe", body_finished=True)))
    assert refused.value.status == 401 and refused.value.body == b"nope"


@pytest.mark.parametrize("answer, reason", [
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Accept: wrong\r\n\r\n", "Bad accept token"),
    (b"not http at all\r\n\r\n", "Bad HTTP message"),
])
def test_an_invalid_answer_raises_without_a_status(answer, reason):
    client = WebSocketClientProtocol()
    client.handshake("h")
    with pytest.raises(HandshakeError) as invalid:
        client.receive_data(answer)
    assert invalid.value.status is None and reason in str(invalid.value)


def test_a_subprotocol_that_was_not_offered_is_refused():
    client = WebSocketClientProtocol()
    server = WebSocketProtocol()
    [request] = server.receive_data(client.handshake("h", subprotocols=["a"]))
    request.subprotocols.append("b")  # a server that picks what was not offered
    server.accept("b")
    with pytest.raises(HandshakeError) as invalid:
        client.receive_data(server.data_to_send())
    assert "unrecognized subprotocol" in str(invalid.value)


def test_connection_lost_during_the_handshake():
    client = WebSocketClientProtocol()
    client.handshake("h")
    assert client.receive_data(b"HTTP/1.1 101 Switch") == []
    with pytest.raises(HandshakeError) as lost:
        client.connection_lost()
    assert lost.value.status is None and "closed the connection" in str(lost.value)


def test_wsproto_server_close_and_ping_events_reach_the_client():
    client = WebSocketClientProtocol(compression=False)
    wsserver = WSConnection(ConnectionType.SERVER)
    wsserver.receive_data(client.handshake("h"))
    next(wsserver.events())
    client.receive_data(wsserver.send(AcceptConnection()))
    client.receive_data(wsserver.send(Ping(b"x")))
    wsserver.receive_data(client.data_to_send())
    assert [type(e).__name__ for e in wsserver.events()] == ["Pong"]
    client.receive_data(wsserver.send(CloseConnection(code=1001, reason="restart")))
    assert client.close_code == 1001 and client.closed
