"""Sans-IO tests of WebSocketProtocol: a wsproto client's bytes in, frames out, no socket."""

from __future__ import annotations

import struct
import zlib

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    RejectConnection,
    RejectData,
    Request,
    TextMessage,
)
from wsproto.extensions import PerMessageDeflate

from geworker.errors import LocalProtocolError, RemoteProtocolError
from geworker.websocket.protocol import WebSocketPhase, WebSocketProtocol, WebSocketRequest

from conftest import client_frame

CLOSED, CONNECTING, OPEN = WebSocketPhase.CLOSED, WebSocketPhase.CONNECTING, WebSocketPhase.OPEN


def client_request(**kwargs) -> tuple[WSConnection, bytes]:
    client = WSConnection(ConnectionType.CLIENT)
    kwargs.setdefault("host", "example")
    kwargs.setdefault("target", "/")
    return client, client.send(Request(**kwargs))


def open_pair(server: WebSocketProtocol | None = None, **kwargs):
    """A server protocol and a wsproto client, handshake done."""
    server = server or WebSocketProtocol()
    client, data = client_request(**kwargs)
    [_request] = server.receive_data(data)
    assert server.accept() == []
    client.receive_data(server.data_to_send())
    assert isinstance(next(client.events()), AcceptConnection)
    return server, client


def events(client: WSConnection, data: bytes) -> list:
    client.receive_data(data)
    return list(client.events())


frame = client_frame  # masked client frames built by hand (what wsproto refuses to send)


def close_code(data: bytes) -> int:
    """The code of the single unmasked close frame in ``data``."""
    assert data[0] == 0x88, data
    return struct.unpack("!H", data[2:4])[0]


# -- opening handshake -------------------------------------------------------


def test_handshake_exposes_request_and_accepts_with_subprotocol_and_headers():
    server = WebSocketProtocol()
    client, data = client_request(
        target="/chat/room%201?user=ann&tag=a&tag=b", subprotocols=["v1", "v2"],
        extra_headers=[(b"Cookie", b"session=abc; theme=dark"), (b"X-Token", b"t")])
    for i in range(0, len(data), 7):  # the head may arrive in pieces
        messages = server.receive_data(data[i:i + 7])
    [request] = messages
    assert isinstance(request, WebSocketRequest)
    assert server.phase is CONNECTING
    assert request.path == "/chat/room 1"
    assert request.query.get_all("tag") == ["a", "b"] and request.query["user"] == "ann"
    assert request.cookies == {"session": "abc", "theme": "dark"}
    assert request.headers["x-token"] == "t"
    assert request.subprotocols == ["v1", "v2"]
    with pytest.raises(LocalProtocolError):
        request.accept(subprotocol="v3")
    request.accept(subprotocol="v2", headers={"X-Server": "yes"})
    _, subprotocol, headers = request.decision
    server.accept(subprotocol, headers)
    assert server.phase is OPEN and server.subprotocol == "v2"
    [accepted] = events(client, server.data_to_send())
    assert isinstance(accepted, AcceptConnection)
    assert accepted.subprotocol == "v2"
    assert (b"x-server", b"yes") in accepted.extra_headers


def test_frames_in_the_same_chunk_as_the_handshake_are_delivered():
    server = WebSocketProtocol()
    _client, data = client_request()
    # A client may send frames right behind its request: h11 keeps them as trailing data.
    first = frame(0x1, b"early") + frame(0x2, b"\x00\x01")
    [_request] = server.receive_data(data + first)
    assert server.receive_data(frame(0x1, b"while deciding")) == []
    assert server.accept() == ["early", b"\x00\x01", "while deciding"]


def test_reject_answers_http_status_and_closes():
    server = WebSocketProtocol()
    client, data = client_request()
    [request] = server.receive_data(data)
    request.reject(403, "go away", {"X-Why": "policy"})
    _, status, headers, body = request.decision
    server.reject(status, headers, body)
    assert server.closed and server.phase is CLOSED
    reply = events(client, server.data_to_send())
    assert isinstance(reply[0], RejectConnection) and reply[0].status_code == 403
    assert (b"x-why", b"policy") in reply[0].headers
    assert b"".join(e.data for e in reply if isinstance(e, RejectData)) == b"go away"
    with pytest.raises(LocalProtocolError):
        request.reject(200)


@pytest.mark.parametrize(("head", "status"), [
    (b"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
     b"Content-Length: 0\r\n\r\n", 405),
    (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 426),
    (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", 426),
    (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
    (b"GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", 400),
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 20000, 431),
])
def test_bad_handshakes_get_an_http_error(head, status):
    server = WebSocketProtocol()
    with pytest.raises(RemoteProtocolError) as exc:
        server.receive_data(head)
    response = exc.value.response
    assert response.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Connection: close" in response
    if status == 426 and b"Version: 8" in head:
        assert b"Sec-WebSocket-Version: 13" in response


# -- messages ----------------------------------------------------------------


def test_text_is_str_binary_is_bytes_and_encode_picks_the_frame_type():
    server, client = open_pair()
    data = client.send(TextMessage("héllo")) + client.send(BytesMessage(b"\xff\x00"))
    assert server.receive_data(data) == ["héllo", b"\xff\x00"]
    out = server.encode("text") + server.encode(b"bin") + server.encode(bytearray(b"ba"))
    got = events(client, out)
    assert [(type(e), e.data) for e in got] == [
        (TextMessage, "text"), (BytesMessage, b"bin"), (BytesMessage, b"ba")]
    with pytest.raises(LocalProtocolError):
        server.encode({"a": 1})


def test_encode_before_accept_and_after_close_gives_nothing():
    server = WebSocketProtocol()
    assert server.encode("x") == b""
    server, client = open_pair()
    server.receive_data(client.send(CloseConnection(1000)))
    assert server.encode("x") == b"" and server.ping() == b"" and server.going_away() == b""


def test_fragmented_message_with_interleaved_ping_fed_byte_by_byte():
    server, client = open_pair()
    data = (client.send(TextMessage("frag-1|", message_finished=False))
            + client.send(Ping(b"p1"))
            + client.send(TextMessage("frag-2|", message_finished=False))
            + client.send(TextMessage("frag-3", message_finished=True)))
    messages = []
    for i in range(len(data)):
        messages += server.receive_data(data[i:i + 1])
        if i < len(data) - 1:
            assert not messages
    assert messages == ["frag-1|frag-2|frag-3"]
    assert not server.has_partial_message
    [pong] = events(client, server.data_to_send())
    assert isinstance(pong, Pong) and pong.payload == b"p1"


def test_multibyte_utf8_split_across_fragments():
    server, _client = open_pair()
    raw = "né€😀".encode()
    data = frame(0x1, raw[:2], fin=False) + frame(0x0, raw[2:6], fin=False) + frame(0x0, raw[6:])
    assert server.receive_data(data) == ["né€😀"]


def test_message_over_max_message_size_closes_1009():
    server, client = open_pair(WebSocketProtocol(max_message_size=100))
    assert server.receive_data(client.send(BytesMessage(b"x" * 100))) == [b"x" * 100]
    data = b"".join(client.send(BytesMessage(b"y" * 40, message_finished=False)) for _ in range(3))
    assert server.receive_data(data) == []
    assert server.closed and server.close_code == 1009
    assert close_code(server.data_to_send()) == 1009
    # A single frame announcing more than the limit also fails, while it streams in.
    server, client = open_pair(WebSocketProtocol(max_message_size=100))
    big = client.send(TextMessage("z" * 1000))
    assert server.receive_data(big[:300]) == []
    assert server.closed and close_code(server.data_to_send()) == 1009


def test_invalid_utf8_closes_1007():
    server, _ = open_pair()
    assert server.receive_data(frame(0x1, b"ok \xc3\x28 bad")) == []
    assert server.closed and close_code(server.data_to_send()) == 1007
    # Fail fast: the first fragment is enough.
    server, _ = open_pair()
    server.receive_data(frame(0x1, b"\xed\xa0\x80", fin=False))
    assert server.closed and close_code(server.data_to_send()) == 1007


@pytest.mark.parametrize("bad", [
    frame(0x3, b"reserved opcode"),
    frame(0xB, b""),  # reserved control opcode
    frame(0x1, b"rsv", rsv=0b010),  # RSV2 without an extension
    frame(0x1, b"rsv1", rsv=0b100),  # RSV1 without permessage-deflate
    frame(0x0, b"continuation of nothing"),
    frame(0x9, b"fragmented ping", fin=False),
    frame(0x9, b"p" * 126),  # control frame over 125 bytes
    frame(0x8, b"\x03"),  # close with a 1-byte payload
    frame(0x8, struct.pack("!H", 1005)),  # close with a local-only code
    b"\x81\x05hello",  # unmasked client frame
])
def test_protocol_violations_close_1002(bad):
    server, _ = open_pair()
    assert server.receive_data(bad) == []
    assert server.closed and server.error
    assert close_code(server.data_to_send()) == 1002


def test_messages_before_a_violation_are_answered_before_the_close_frame():
    server, client = open_pair()
    messages = server.receive_data(frame(0x1, b"first") + frame(0x3, b"bad"))
    assert messages == ["first"] and server.closed
    assert server.data_to_send() == b""  # the close frame waits for the answers
    echo = server.encode(messages[0])
    bye = server.data_to_send()
    got = events(client, echo + bye)
    assert isinstance(got[0], TextMessage) and got[0].data == "first"
    assert isinstance(got[1], CloseConnection) and got[1].code == 1002


def test_peer_close_is_echoed_with_its_code_and_reason():
    server, client = open_pair()
    assert server.receive_data(client.send(CloseConnection(4001, "bye"))) == []
    assert server.closed and server.close_code == 4001 and server.close_reason == "bye"
    [echo] = events(client, server.data_to_send())
    assert isinstance(echo, CloseConnection) and (echo.code, echo.reason) == (4001, "bye")
    # A close frame with no code is answered with an empty close frame.
    server, client = open_pair()
    server.receive_data(frame(0x8, b""))
    assert server.data_to_send() == b"\x88\x00"


def test_server_close_waits_for_the_peer_and_going_away_is_1001():
    server, client = open_pair()
    bye = server.going_away()
    assert close_code(bye) == 1001 and server.close_sent and not server.closed
    assert server.close() == b""  # never a second close frame
    # Data still in flight is discarded; the peer's close completes the handshake.
    got = events(client, bye)
    assert got[0].code == 1001
    assert server.receive_data(frame(0x1, b"late")) == []
    assert server.receive_data(client.send(got[0].response())) == []
    assert server.closed and server.phase is CLOSED


def test_ping_after_peer_close_in_same_chunk_does_not_raise():
    server, _ = open_pair()
    server.receive_data(frame(0x8, struct.pack("!H", 1000)) + frame(0x9, b"late"))
    assert close_code(server.data_to_send()) == 1000


# -- permessage-deflate -----------------------------------------------------


def test_compression_negotiated_when_offered_and_roundtrips():
    server, client = open_pair(extensions=[PerMessageDeflate()])
    text = "compress me " * 500
    data = client.send(TextMessage(text))
    assert len(data) < len(text) // 10  # it really was compressed
    assert server.receive_data(data) == [text]
    out = server.encode(text)
    assert len(out) < len(text) // 10
    assert [e.data for e in events(client, out)] == [text]
    # Fragmented compressed message with a ping between fragments.
    data = (client.send(TextMessage("a" * 300, message_finished=False)) + client.send(Ping(b"x"))
            + client.send(TextMessage("b" * 300, message_finished=True)))
    assert server.receive_data(data) == ["a" * 300 + "b" * 300]


def test_compression_can_be_disabled():
    server = WebSocketProtocol(compression=False)
    client, data = client_request(extensions=[PerMessageDeflate()])
    server.receive_data(data)
    server.accept()
    response = server.data_to_send()
    assert b"permessage-deflate" not in response
    client.receive_data(response)
    [accepted] = client.events()
    assert accepted.extensions == []


def test_first_acceptable_deflate_offer_wins():
    server = WebSocketProtocol()
    head = (b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=8, "
            b"permessage-deflate; bogus=1, permessage-deflate; server_no_context_takeover\r\n\r\n")
    server.receive_data(head)
    server.accept()
    response = server.data_to_send()
    assert b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n" \
        in response


def test_decompressed_size_is_capped_while_inflating():
    server, client = open_pair(WebSocketProtocol(max_message_size=10 * 1024 * 1024,
                                                 max_decompressed_size=64 * 1024),
                               extensions=[PerMessageDeflate()])
    ok = client.send(BytesMessage(b"\x00" * 60000))
    assert server.receive_data(ok) == [b"\x00" * 60000]
    # 8 MiB of zeros compress to ~8 KiB: the server must stop at 64 KiB.
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = bomb.compress(b"\x00" * (8 * 1024 * 1024)) + bomb.flush(zlib.Z_SYNC_FLUSH)[:-4]
    assert len(payload) < 20000
    assert server.receive_data(frame(0x2, payload, rsv=0b100)) == []
    assert server.closed and close_code(server.data_to_send()) == 1009


def test_corrupt_compressed_data_closes_1007():
    server, _ = open_pair(extensions=[PerMessageDeflate()])
    server.receive_data(frame(0x2, b"\xff\xff\xff\xff not deflate", rsv=0b100))
    assert server.closed and close_code(server.data_to_send()) == 1007


def test_upgrade_entry_point_from_a_parsed_request():
    import h11

    _client, data = client_request(target="/ws?x=1")
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(data + frame(0x1, b"after head"))
    event = parser.next_event()
    assert isinstance(event, h11.Request)
    server = WebSocketProtocol()
    request = server.start(event, b"" + frame(0x1, b"after head"), ("1.2.3.4", 5))
    assert request.query["x"] == "1" and request.remote_address == ("1.2.3.4", 5)
    assert server.accept() == ["after head"]
    bad = h11.Request(method="GET", target="/", headers=[("Host", "h")])
    with pytest.raises(RemoteProtocolError):
        WebSocketProtocol().start(bad)
