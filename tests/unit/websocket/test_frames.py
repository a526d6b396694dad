"""The fast codec against wsproto: the same messages, the same frames."""

from __future__ import annotations

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, TextMessage

from geworker.websocket.frames import decode_simple, encode_message

SIZES = [0, 1, 125, 126, 65535, 65536]


def client_frames(*messages) -> bytes:
    client = Connection(ConnectionType.CLIENT)
    return b"".join(client.send(TextMessage(m) if isinstance(m, str) else BytesMessage(m))
                    for m in messages)


@pytest.mark.parametrize("size", SIZES)
def test_decode_simple_reads_what_a_client_sends(size):
    data = client_frames("é" * (size // 2), b"\x01" * size)
    messages: list = []
    assert decode_simple(data, 1 << 20, messages) == len(data)
    assert messages == ["é" * (size // 2), b"\x01" * size]


def test_decode_simple_stops_at_what_it_leaves_to_wsproto():
    data = client_frames("ok", b"x" * 200)
    for cut in range(len(data)):  # a partial frame is never taken
        messages: list = []
        used = decode_simple(data[:cut], 1 << 20, messages)
        assert used in (0, 8) and len(messages) == (used == 8)
    messages = []
    assert decode_simple(data, 100, messages) == 8  # the second is over the limit
    ping = b"\x89\x80\x00\x00\x00\x00"
    assert decode_simple(ping, 100, []) == 0
    bad_utf8 = b"\x81\x81\x00\x00\x00\x00\xff"
    assert decode_simple(bad_utf8, 100, []) == 0


@pytest.mark.parametrize("size", SIZES)
def test_encode_message_frames_as_wsproto_does(size):
    server = Connection(ConnectionType.SERVER)
    for message in ("t" * size, b"b" * size):
        event = TextMessage(message) if isinstance(message, str) else BytesMessage(message)
        assert encode_message(message) == server.send(event)
    assert encode_message(bytearray(b"ab")) == server.send(BytesMessage(b"ab"))
    assert encode_message({"not": "a frame"}) is None
