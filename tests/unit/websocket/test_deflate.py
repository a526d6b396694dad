"""permessage-deflate: offer negotiation and the inflate bound."""

from __future__ import annotations

import zlib

import pytest
from wsproto.extensions import PerMessageDeflate

from geworker.websocket.deflate import negotiate, normalize_offer
from geworker.websocket.protocol import CloseCode, WebSocketProtocol


@pytest.mark.parametrize(("offer", "normalized"), [
    ("permessage-deflate", "permessage-deflate"),
    ("permessage-deflate; client_max_window_bits", "permessage-deflate; client_max_window_bits"),
    ('permessage-deflate; server_max_window_bits="10"',
     "permessage-deflate; server_max_window_bits=10"),
    ("permessage-deflate; client_max_window_bits=8",
     "permessage-deflate; client_max_window_bits=9"),
    ("permessage-deflate; server_max_window_bits=8", None),
    ("permessage-deflate; server_no_context_takeover=1", None),
    ("permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
    ("permessage-deflate; unknown", None),
    ("x-webkit-deflate-frame", None),
])
def test_normalize_offer(offer, normalized):
    assert normalize_offer(offer) == normalized


def test_negotiate_takes_the_first_acceptable_offer():
    assert negotiate(["foo", "permessage-deflate; bad"], 1000) is None
    header, ext = negotiate(["permessage-deflate; bad",
                             "permessage-deflate; server_no_context_takeover"], 1000)
    assert header == "permessage-deflate; server_no_context_takeover"
    assert isinstance(ext, PerMessageDeflate) and ext.max_size == 1000


def masked(first: int, payload: bytes) -> bytes:
    key = b"\x00\x00\x00\x00"
    n = len(payload)
    length = bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + n.to_bytes(2, "big")
    return bytes([first]) + length + key + payload


def test_a_small_frame_inflating_past_the_bound_closes_1009():
    proto = WebSocketProtocol(max_message_size=1 << 20, max_decompressed_size=10_000)
    proto.receive_data(b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                       b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                       b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Extensions: "
                       b"permessage-deflate\r\n\r\n")
    proto.accept()
    assert b"Sec-WebSocket-Extensions: permessage-deflate" in proto.data_to_send()
    deflater = zlib.compressobj(wbits=-15)
    bomb = deflater.compress(b"\0" * 1_000_000) + deflater.flush(zlib.Z_SYNC_FLUSH)
    assert len(bomb) < 2000
    assert proto.receive_data(masked(0xC2, bomb[:-4])) == []
    assert proto.close_code == CloseCode.MESSAGE_TOO_BIG
