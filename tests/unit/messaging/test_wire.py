"""The messaging frame codec (sans-IO)."""

from __future__ import annotations

import struct

import pytest

from geworker.errors import LocalProtocolError, RemoteProtocolError
from geworker.messaging.wire import MAX_MESSAGE, FrameReader, Op, check_message, encode


def test_frames_round_trip_with_str_bytes_and_no_payload():
    data = (encode(Op.GROUP, ["room", ["abc"]], "héllo") + encode(Op.CLIENT, ["x1"], b"\x00\xff")
            + encode(Op.UNGROUP, ["room"]))
    frames = FrameReader().feed(data)
    assert [(f.op, f.args, f.payload) for f in frames] == [
        (Op.GROUP, ["room", ["abc"]], "héllo"),
        (Op.CLIENT, ["x1"], b"\x00\xff"),
        (Op.UNGROUP, ["room"], None),
    ]


def test_a_stream_split_at_every_byte_gives_the_same_frames():
    data = encode(Op.UID, ["ann", []], "one") + encode(Op.QUERY, [7, "uids", []])
    for cut in range(len(data) + 1):
        reader = FrameReader()
        frames = reader.feed(data[:cut]) + reader.feed(data[cut:])
        assert [(f.op, f.args, f.payload) for f in frames] == [
            (Op.UID, ["ann", []], "one"), (Op.QUERY, [7, "uids", []], None)]


def test_messages_are_str_or_bytes_up_to_the_limit():
    assert check_message("x" * MAX_MESSAGE)[0] == 1
    assert check_message(bytearray(b"ab")) == (2, b"ab")
    with pytest.raises(LocalProtocolError, match=f"at most {MAX_MESSAGE} bytes"):
        check_message(b"x" * (MAX_MESSAGE + 1))
    with pytest.raises(LocalProtocolError, match="str or bytes, not dict"):
        encode(Op.ALL, [None, []], {"a": 1})


def test_hostile_frames_are_refused():
    with pytest.raises(RemoteProtocolError, match="frame of"):
        FrameReader().feed(struct.pack("!I", 2**31) + b"\0" * 8)
    with pytest.raises(RemoteProtocolError, match="frame of"):
        FrameReader().feed(struct.pack("!I", 1) + b"\0")
    bad_json = struct.pack("!IBBI", 6 + 3, Op.UID, 0, 3) + b"[1,"
    with pytest.raises(RemoteProtocolError, match="malformed"):
        FrameReader().feed(bad_json)
    bad_op = struct.pack("!IBBI", 6 + 2, 99, 0, 2) + b"[]"
    with pytest.raises(RemoteProtocolError, match="malformed"):
        FrameReader().feed(bad_op)
    bad_utf8 = struct.pack("!IBBI", 6 + 2 + 1, Op.UID, 1, 2) + b"[]\xff"
    with pytest.raises(RemoteProtocolError, match="malformed"):
        FrameReader().feed(bad_utf8)
