"""Sans-IO tests of the text, frame, raw and Workerman-adapter protocols: bytes in, messages out."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geworker import (
    FrameProtocol,
    LocalProtocolError,
    MessageTooLarge,
    RawProtocol,
    RemoteProtocolError,
    TextProtocol,
    WorkermanProtocol,
)


def feed_in_pieces(protocol, data: bytes, cuts: list[int]) -> list:
    """Feed ``data`` split at ``cuts``; return every message produced."""
    out = []
    start = 0
    for cut in [*sorted(set(cuts)), len(data)]:
        if cut > start:
            out += protocol.receive_data(data[start:cut])
            start = cut
    return out


# -- text -----------------------------------------------------------------

def test_text_splits_lines_and_drops_cr():
    p = TextProtocol()
    assert p.receive_data(b"one\r\ntwo\nthree") == ["one", "two"]
    assert p.has_partial_message
    assert p.receive_data(b"\n") == ["three"]
    assert not p.has_partial_message


def test_text_every_split_point():
    wire = "héllo\r\nwörld\n\nlast\n".encode()
    expected = ["héllo", "wörld", "", "last"]
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            assert feed_in_pieces(TextProtocol(), wire, [i, j]) == expected


def test_text_byte_by_byte():
    p = TextProtocol()
    out = []
    for b in b"abc\ndef\n":
        out += p.receive_data(bytes([b]))
    assert out == ["abc", "def"]


def test_text_line_too_long_is_rejected_even_without_newline():
    p = TextProtocol(max_package_size=10)
    p.receive_data(b"12345")
    with pytest.raises(MessageTooLarge):
        p.receive_data(b"678901")


def test_text_long_line_inside_a_chunk_is_rejected():
    p = TextProtocol(max_package_size=10)
    with pytest.raises(MessageTooLarge):
        p.receive_data(b"ok\n" + b"x" * 50 + b"\nok\n")


def test_text_rejects_invalid_utf8():
    with pytest.raises(RemoteProtocolError, match="UTF-8"):
        TextProtocol().receive_data(b"\xff\xfe garbage\n")


def test_text_encode():
    p = TextProtocol()
    assert p.encode("hé") == "hé\n".encode()
    assert p.encode(b"raw") == b"raw\n"
    with pytest.raises(LocalProtocolError):
        p.encode({"not": "text"})


@given(st.lists(st.text(alphabet=st.characters(blacklist_characters="\r\n",
                                               blacklist_categories=("Cs",))), max_size=20),
       st.lists(st.integers(min_value=0, max_value=2000), max_size=10))
def test_text_roundtrip_any_split(lines, cuts):
    p = TextProtocol()
    wire = b"".join(p.encode(line) for line in lines)
    assert feed_in_pieces(TextProtocol(), wire, [c % (len(wire) + 1) for c in cuts]) == lines


# -- frame ----------------------------------------------------------------

def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload) + 4) + payload


def test_frame_several_in_one_chunk():
    p = FrameProtocol()
    assert p.receive_data(frame(b"a") + frame(b"") + frame(b"bc")) == [b"a", b"", b"bc"]


def test_frame_every_split_point():
    wire = frame(b"hello") + frame(b"") + frame(b"\x00" * 9)
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            assert feed_in_pieces(FrameProtocol(), wire, [i, j]) == [b"hello", b"", b"\x00" * 9]


def test_frame_header_announcing_4gib_is_rejected_at_once():
    p = FrameProtocol(max_package_size=1024)
    with pytest.raises(MessageTooLarge):
        p.receive_data(b"\xff\xff\xff\xff")


def test_frame_length_shorter_than_header_is_rejected():
    with pytest.raises(RemoteProtocolError):
        FrameProtocol().receive_data(b"\x00\x00\x00\x02")


def test_frame_encode_includes_header_in_length():
    assert FrameProtocol().encode(b"xyz") == b"\x00\x00\x00\x07xyz"
    assert FrameProtocol().encode("é") == b"\x00\x00\x00\x06\xc3\xa9"


@given(st.lists(st.binary(max_size=300), max_size=15),
       st.lists(st.integers(min_value=0, max_value=5000), max_size=10))
def test_frame_roundtrip_any_split(payloads, cuts):
    wire = b"".join(FrameProtocol().encode(p) for p in payloads)
    out = feed_in_pieces(FrameProtocol(), wire, [c % (len(wire) + 1) for c in cuts])
    assert out == payloads


# -- raw --------------------------------------------------------------------

def test_raw_passes_chunks_through():
    p = RawProtocol()
    assert p.receive_data(b"\x00\x01") == [b"\x00\x01"]
    assert p.encode("é") == b"\xc3\xa9"
    assert p.encode(bytearray(b"ab")) == b"ab"


# -- Workerman adapter --------------------------------------------------------

class LengthLine(WorkermanProtocol):
    """``<len>:<payload>``, as a Workerman protocol would write it."""

    def input(self, buffer: bytes) -> int:
        colon = buffer.find(b":")
        if colon < 0:
            return 0
        if not buffer[:colon].isdigit():
            return -1
        return colon + 1 + int(buffer[:colon])

    def decode(self, package: bytes) -> str:
        return package.split(b":", 1)[1].decode()

    def encode(self, message: str) -> bytes:
        data = message.encode()
        return str(len(data)).encode() + b":" + data


def test_workerman_adapter_every_split_point():
    wire = b"5:hello3:abc0:"
    for i in range(len(wire) + 1):
        for j in range(i, len(wire) + 1):
            assert feed_in_pieces(LengthLine(), wire, [i, j]) == ["hello", "abc", ""]


def test_workerman_adapter_rejects():
    with pytest.raises(RemoteProtocolError):
        LengthLine().receive_data(b"x:")
    with pytest.raises(MessageTooLarge):
        LengthLine(max_package_size=100).receive_data(b"999:")
