"""Differential tests: WebSocketProtocol with its fast path against wsproto alone.

The fast path decodes simple client frames and encodes server frames without
wsproto. Every test here feeds the same bytes to a protocol with the fast path
and to one without (``fast_path=False``, wsproto for every frame) and asserts
the same messages, the same bytes to send (answers, pongs, close frames) and
the same close codes; other tests check that the fast path is really taken.
"""

from __future__ import annotations

import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.connection import Connection
from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage
from wsproto.extensions import PerMessageDeflate

from geworker.websocket.protocol import WebSocketProtocol

BOUNDARY_SIZES = [0, 1, 3, 4, 5, 125, 126, 127, 65535, 65536, 65537]


def open_server(fast: bool, deflate: bool = False, **kwargs) -> WebSocketProtocol:
    """A protocol after an accepted handshake (its 101 answer already taken)."""
    server = WebSocketProtocol(fast_path=fast, **kwargs)
    client = WSConnection(ConnectionType.CLIENT)
    extensions = [PerMessageDeflate()] if deflate else []
    [_request] = server.receive_data(client.send(Request(host="h", target="/",
                                                         extensions=extensions)))
    assert server.accept() == []
    client.receive_data(server.data_to_send())
    assert isinstance(next(client.events()), AcceptConnection)
    return server


DEFLATE_OFFERS = [PerMessageDeflate(), PerMessageDeflate(server_no_context_takeover=True),
                  PerMessageDeflate(server_max_window_bits=9)]


def deflate_pair(fast: bool, offer: PerMessageDeflate) -> tuple[WebSocketProtocol, WSConnection]:
    """A server with permessage-deflate negotiated from ``offer``, and its wsproto client."""
    server = WebSocketProtocol(fast_path=fast)
    client = WSConnection(ConnectionType.CLIENT)
    ext = PerMessageDeflate(offer.client_no_context_takeover, offer.client_max_window_bits,
                            offer.server_no_context_takeover, offer.server_max_window_bits)
    server.receive_data(client.send(Request(host="h", target="/", extensions=[ext])))
    server.accept()
    client.receive_data(server.data_to_send())
    assert isinstance(next(client.events()), AcceptConnection)
    return server, client


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0, masked: bool = True,
          key: bytes = b"\x12\x34\x56\x78", length_form: str = "min") -> bytes:
    """A client frame built byte by byte (independent of the code under test)."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    bit = 0x80 if masked else 0
    if length_form == "min" and n < 126:
        head += bytes([bit | n])
    elif length_form in ("min", "16") and n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    elif length_form == "msb":
        head += bytes([bit | 127]) + struct.pack("!Q", n | 1 << 63)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def run(server: WebSocketProtocol, steps: list) -> list:
    """What a connection would see and write: per step, messages, bytes out, close state.

    Mirrors the transport loop: feed, take data_to_send, echo each message
    through ``encode``, and take data_to_send again once the protocol closed.
    """
    record = []
    for step in steps:
        try:
            if step[0] == "close":
                out = server.close(step[1], "bye")
                messages: list = []
            elif step[0] == "ping":
                out = server.ping(step[1])
                messages = []
            else:
                messages = server.receive_data(step[1])
                out = server.data_to_send()
                out += b"".join(server.encode(m) for m in messages)
                if server.closed:
                    out += server.data_to_send()
        except Exception as exc:  # the same failure both ways is fine, a different one is not
            record.append(("raised", type(exc).__name__, str(exc)))
            continue
        record.append((messages, bytes(out), server.closed, server.close_code,
                       server.close_reason, server.error, server.has_partial_message,
                       server.is_open))
    return record


def assert_same(steps: list, **kwargs) -> WebSocketProtocol:
    """Run ``steps`` with and without the fast path; returns the fast one."""
    fast, slow = open_server(True, **kwargs), open_server(False, **kwargs)
    assert run(fast, steps) == run(slow, steps)
    assert slow.fast_frames == 0
    return fast


def feeds(data: bytes, cuts: list[int]) -> list:
    points = sorted({c for c in cuts if 0 < c < len(data)})
    bounds = [0, *points, len(data)]
    return [("feed", data[a:b]) for a, b in itertools.pairwise(bounds) if b > a]


# -- the fast path is taken, and only where it should be ------------------------


@pytest.mark.parametrize("size", BOUNDARY_SIZES)
def test_fast_path_decodes_simple_frames_of_every_length_form(size):
    text = ("é" * size).encode()[:size].decode(errors="ignore").encode()
    data = frame(1, text) + frame(2, bytes(range(256)) * (size // 256) + bytes(size % 256))
    fast = assert_same([("feed", data)])
    assert fast.fast_frames == 2


@pytest.mark.parametrize("data", [
    frame(9, b"ping"),                       # control frame
    frame(10, b""),                          # unsolicited pong
    frame(1, b"part", fin=False),            # fragment
    frame(0, b"cont"),                       # stray continuation
    frame(1, b"rsv", rsv=4),                 # RSV1 without an extension
    frame(2, b"rsv", rsv=2),
    frame(1, b"plain", masked=False),        # unmasked
    frame(3, b"reserved"),                   # reserved opcode
    frame(1, b"short", length_form="16"),    # non-minimal length
    frame(2, b"x" * 50, length_form="64"),
    frame(2, b"x" * 300, length_form="64"),
    frame(2, b"x" * 70000, length_form="msb"),
    frame(1, b"ok \xff bad"),                # invalid UTF-8
    frame(1, b"\xe2\x82"),                   # truncated UTF-8
    frame(2, b"y" * 101),                    # over max_message_size
    frame(8, struct.pack("!H", 1000)),       # close
])
def test_unusual_frames_go_to_wsproto(data):
    fast = assert_same([("feed", data + frame(1, b"after"))], max_message_size=100)
    assert fast.fast_frames == 0


def test_fast_path_resumes_after_wsproto_finished_a_fragmented_message():
    data = frame(1, b"ab", fin=False) + frame(9, b"p") + frame(0, b"cd") + frame(2, b"ef")
    fast = assert_same([("feed", data), ("feed", frame(1, b"gh"))])
    assert fast.fast_frames == 1  # not "ef" (same chunk as wsproto's work), but "gh"


def test_partial_frame_goes_to_wsproto_and_the_next_chunk_waits_for_it():
    data = frame(1, b"hello") + frame(2, b"world")
    fast = assert_same([("feed", data[:-3]), ("feed", data[-3:] + frame(1, b"!"))])
    assert fast.fast_frames == 1  # "hello"; "world" was split, "!" followed it in wsproto's chunk


def test_a_header_split_inside_wsproto_is_never_reparsed_by_the_fast_path():
    # The 16-bit length 0x8180 reads like a text frame header (0x81, masked, length 0)
    # if the fast path wrongly started at the second chunk.
    data = frame(2, b"q" * 0x8180)
    fast = assert_same([("feed", data[:2]), ("feed", data[2:]), ("feed", frame(1, b"next"))])
    assert fast.fast_frames == 1


@pytest.mark.parametrize("bad", [frame(1, b"\xff"), frame(2, b"y" * 101)])
def test_nothing_is_delivered_after_a_failure_even_before_its_close_frame_left(bad):
    for server in open_server(True, max_message_size=100), open_server(False, max_message_size=100):
        assert server.receive_data(frame(1, b"a") + bad) == ["a"]
        assert server.receive_data(frame(1, b"b") + frame(2, b"c")) == []
        assert server.close_code in (1007, 1009)


def test_after_a_server_close_frames_go_to_wsproto():
    fast = assert_same([("feed", frame(1, b"a")), ("close", 1000), ("feed", frame(1, b"b")),
                        ("feed", frame(8, struct.pack("!H", 1000)))])
    assert fast.fast_frames == 1


def test_compressed_connection_fast_path_only_for_uncompressed_frames():
    _server, client = deflate_pair(False, PerMessageDeflate())
    compressed = client.send(TextMessage(data="squeeze " * 20))
    assert compressed[0] & 0x40  # RSV1: this frame is compressed
    steps = [("feed", frame(1, b"plain") + compressed + frame(2, b"raw"))]
    steps += [("feed", client.send(BytesMessage(data=b"z" * 300))), ("feed", frame(1, b"x"))]
    fast = assert_same(steps, deflate=True)
    assert fast.fast_frames == 2  # "plain" and "x"


def test_every_split_point_of_a_mixed_sequence():
    data = (frame(1, "héllo".encode()) + frame(2, b"\x00" * 126) + frame(9, b"p")
            + frame(1, b"fr", fin=False) + frame(0, b"ag") + frame(1, b"z" * 130)
            + frame(1, b"bad \xc3") + frame(2, b"never"))
    for cut in range(1, len(data)):
        assert_same(feeds(data, [cut]))
    fast = assert_same(feeds(data, list(range(len(data)))))  # byte by byte
    assert fast.fast_frames == 0  # no chunk ever held a complete frame
    assert assert_same([("feed", data)]).fast_frames == 2


def test_messages_before_a_fault_in_the_same_chunk_are_answered_first():
    data = frame(1, b"one") + frame(2, b"two") + frame(1, b"\xff")
    fast, slow = open_server(True), open_server(False)
    assert run(fast, [("feed", data)]) == run(slow, [("feed", data)])
    assert fast.fast_frames == 2 and fast.close_code == 1007


# -- property: any sequence of frames, any chunking ------------------------------


@st.composite
def client_frames(draw) -> bytes:
    size = draw(st.one_of(st.integers(0, 140), st.sampled_from(BOUNDARY_SIZES)))
    kind = draw(st.sampled_from(["text", "text", "text", "bytes", "bytes", "invalid"]))
    if kind == "bytes":
        seed = draw(st.binary(min_size=1, max_size=16))
    else:
        seed = draw(st.text(min_size=1, max_size=8)).encode()
        if kind == "invalid":
            seed += draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82"]))
    payload = (seed * (size // len(seed) + 1))[:size]
    if kind == "text":  # a character cut at the end would make it invalid
        payload = payload.decode(errors="ignore").encode()
    if draw(st.integers(0, 9)) == 7:  # a mutated frame (hypothesis favours 0: not 0)
        opcode = draw(st.sampled_from([0, 1, 2, 3, 7, 8, 9, 10, 11, 15]))
        if opcode >= 8:
            payload = payload[:draw(st.sampled_from([0, 1, 2, 125, 126]))]
        return frame(opcode, payload, fin=draw(st.booleans()), rsv=draw(st.integers(0, 7)),
                     masked=draw(st.booleans()),
                     key=draw(st.binary(min_size=4, max_size=4)),
                     length_form=draw(st.sampled_from(["min", "16", "64", "msb"])))
    opcode = 1 if kind != "bytes" else 2
    fin = draw(st.integers(0, 5)) != 3
    if not fin:  # a fragmented message, maybe with a ping between its frames
        rest = frame(0, payload[size // 2:], key=draw(st.binary(min_size=4, max_size=4)))
        ping = frame(9, b"hi") if draw(st.booleans()) else b""
        return frame(opcode, payload[:size // 2], fin=False) + ping + rest
    return frame(opcode, payload, key=draw(st.binary(min_size=4, max_size=4)))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(client_frames(), min_size=1, max_size=8),
       st.lists(st.integers(0, 200_000), max_size=6),
       st.sampled_from([1024 * 1024, 100, 65536]),
       st.booleans(), st.data())
def test_any_frames_any_chunking_same_as_wsproto(frames, cuts, limit, ping_after, data):
    stream = b"".join(frames)
    steps = feeds(stream, cuts)
    if ping_after:
        steps.insert(data.draw(st.integers(0, len(steps))), ("ping", b"srv"))
    if data.draw(st.integers(0, 9)) == 7:
        steps.insert(data.draw(st.integers(0, len(steps))), ("close", 1001))
    if data.draw(st.booleans()):
        steps.append(("feed", frame(8, struct.pack("!H", 1000) + b"done")))
    assert_same(steps, max_message_size=limit)


# -- the encoder ---------------------------------------------------------------


def decoded_by_client(data: bytes) -> list:
    """The messages a wsproto client connection (past its handshake) reads from ``data``."""
    client = Connection(ConnectionType.CLIENT)
    client.receive_data(data)
    out = []
    for event in client.events():
        assert isinstance(event, (TextMessage, BytesMessage)), event
        assert event.message_finished
        out.append(event.data)
    return out


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200),
                 st.binary(max_size=200),
                 st.sampled_from(BOUNDARY_SIZES).map(lambda n: b"b" * n),
                 st.sampled_from(BOUNDARY_SIZES).map(lambda n: "t" * n)),
       st.sampled_from([bytes, bytearray, memoryview]))
def test_fast_encoder_matches_wsproto_and_a_wsproto_client_reads_it(message, wrap):
    if isinstance(message, bytes):
        message = wrap(message)
    fast, slow = open_server(True), open_server(False)
    data = fast.encode(message)
    assert data == slow.encode(message)
    expected = message if isinstance(message, str) else bytes(message)
    assert decoded_by_client(data) == [expected]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=300),
                          st.sampled_from(BOUNDARY_SIZES).map(lambda n: "ab" * (n // 2)),
                          st.just(("ping",))), min_size=1, max_size=10),
       st.sampled_from(range(len(DEFLATE_OFFERS))))
def test_compressed_frames_match_wsproto_and_a_wsproto_client_inflates_them(messages, offer):
    fast, client = deflate_pair(True, DEFLATE_OFFERS[offer])
    slow, _client = deflate_pair(False, DEFLATE_OFFERS[offer])
    assert fast._deflate is not None and slow._deflate is None
    for message in messages:
        if message == ("ping",):  # a control frame between messages: never compressed
            data = fast.ping(b"p")
            assert data == slow.ping(b"p")
            continue
        data = fast.encode(message)
        assert data == slow.encode(message)
        assert data[0] & 0x40  # compressed
        client.receive_data(data)
        [event] = client.events()
        assert event.data == message and event.message_finished


def test_fast_encoder_refuses_what_wsproto_refuses():
    fast = open_server(True)
    with pytest.raises(Exception) as caught:
        fast.encode(3)
    with pytest.raises(type(caught.value)):
        open_server(False).encode(3)
    fast.close()
    assert fast.encode("late") == b""
