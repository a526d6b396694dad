"""Canaries: what geworker relies on in wsproto's private state is still there.

``geworker.websocket._wsproto`` is the one module reading wsproto internals
(see its docstring). Each test here checks one of them on a real wsproto
object and fails naming the attribute, so a wsproto release that moves
something fails here, clearly, before it shows up as a wrong frame.
"""

from __future__ import annotations

import inspect
import re
import zlib
from pathlib import Path

import pytest
import wsproto
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, Ping, TextMessage
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import FrameDecoder, FrameProtocol, MessageDecoder

import geworker
from geworker.websocket import _wsproto

VERSION = getattr(wsproto, "__version__", "?")
MASK = b"\x01\x02\x03\x04"


def client_frame(first: int, payload: bytes) -> bytes:
    """A masked client frame with a short payload."""
    assert len(payload) < 126
    return (bytes([first, 0x80 | len(payload)]) + MASK
            + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload)))


def require(obj: object, name: str, kind: type | tuple[type, ...] | None = None) -> object:
    """``getattr(obj, name)``, or a failure naming what wsproto no longer has."""
    owner = type(obj).__name__
    if not hasattr(obj, name):
        pytest.fail(f"wsproto {VERSION}: {owner}.{name} is gone; "
                    "geworker.websocket._wsproto relies on it")
    value = getattr(obj, name)
    if kind is not None and not isinstance(value, kind):
        pytest.fail(f"wsproto {VERSION}: {owner}.{name} is a {type(value).__name__}, "
                    f"not {kind}; geworker.websocket._wsproto relies on it")
    return value


def test_connection_keeps_its_events_in_a_replaceable_queue():
    ws = Connection(ConnectionType.SERVER)
    require(ws, "_events")
    ws = _wsproto.new_server()
    assert type(require(ws, "_events")).__name__ == "_EventQueue"
    ws.receive_data(client_frame(0x89, b"p") + client_frame(0x81, b"hi"))
    events = list(ws.events())  # read from our list: append and popleft are all it needs
    assert [type(e) for e in events] == [Ping, TextMessage], (
        f"wsproto {VERSION}: Connection._events is no longer the queue events() reads")


def test_frame_protocol_exposes_its_decoders():
    ws = Connection(ConnectionType.SERVER)
    proto = require(ws, "_proto", FrameProtocol)
    decoder = require(proto, "_frame_decoder", FrameDecoder)
    messages = require(proto, "_message_decoder", MessageDecoder)
    assert require(decoder, "header") is None
    assert require(require(decoder, "buffer"), "buffer", bytearray) == bytearray()
    assert require(messages, "opcode") is None


def test_between_messages_follows_wsproto_state():
    ws = _wsproto.new_server()
    view = _wsproto.WsprotoView(ws)
    assert view.between_messages()
    frame = client_frame(0x81, b"hello")
    ws.receive_data(frame[:3])  # a partial header: bytes held in decoder.buffer.buffer
    list(ws.events())
    assert not view.between_messages(), "FrameDecoder.buffer.buffer no longer holds the bytes"
    ws.receive_data(frame[3:])
    assert [e.data for e in ws.events()] == ["hello"]
    assert view.between_messages()
    ws.receive_data(client_frame(0x01, b"frag"))  # FIN clear: a message in progress
    parts = [e.data for e in ws.events()]
    assert not view.between_messages(), "MessageDecoder.opcode no longer marks a message"
    ws.receive_data(client_frame(0x80, b"ment"))
    assert "".join(parts + [e.data for e in ws.events()]) == "fragment"
    assert view.between_messages()
    # A header parsed, its payload not yet received.
    ws.receive_data(client_frame(0x82, b"abcdef")[:8])
    list(ws.events())
    assert not view.between_messages(), "FrameDecoder.header no longer marks a frame"


def test_the_view_is_the_live_decoder_state():
    ws = _wsproto.new_server()
    view = _wsproto.WsprotoView(ws)
    ws.receive_data(client_frame(0x82, b"x") * 3)
    assert [e.data for e in ws.events() if isinstance(e, BytesMessage)] == [b"x"] * 3
    # wsproto must not have replaced the decoders it was created with.
    assert view.frame_decoder is ws._proto._frame_decoder
    assert view.message_decoder is ws._proto._message_decoder


def test_per_message_deflate_inbound_state():
    ext = PerMessageDeflate()
    for name in ("_decompressor", "_inbound_compressed", "_inbound_is_compressible"):
        require(ext, name)
    assert _wsproto.inflater(ext) is None
    assert _wsproto.inbound_state(ext) == (None, None)
    ext.accept("permessage-deflate")
    ws = _wsproto.new_server([ext])
    compressor = zlib.compressobj(wbits=-15)
    payload = compressor.compress(b"hello") + compressor.flush(zlib.Z_SYNC_FLUSH)
    frame = client_frame(0xC1, payload[:-4])  # FIN, RSV1, TEXT
    ws.receive_data(frame[:-1])  # header and part of the payload: a message under way
    parts = [e.data for e in ws.events()]
    assert _wsproto.inbound_state(ext) == (True, True), (
        "PerMessageDeflate._inbound_compressed/_inbound_is_compressible changed meaning")
    assert isinstance(_wsproto.inflater(ext), type(zlib.decompressobj())), (
        "PerMessageDeflate._decompressor is no longer the zlib inflater")
    ws.receive_data(frame[-1:])
    assert "".join(parts + [e.data for e in ws.events()]) == "hello"
    assert _wsproto.inbound_state(ext)[0] is None, "_inbound_compressed is not reset per message"


def test_extension_hooks_keep_their_signatures():
    for name, params in (("frame_inbound_header", ["proto", "opcode", "rsv", "payload_length"]),
                         ("frame_inbound_payload_data", ["proto", "data"]),
                         ("frame_inbound_complete", ["proto", "fin"]),
                         ("frame_outbound", ["proto", "opcode", "rsv", "data", "fin"])):
        method = require(Extension, name)
        got = list(inspect.signature(method).parameters)[1:]
        assert got == params, f"wsproto {VERSION}: Extension.{name}{tuple(got)} changed"


def test_compress_message_uses_the_connection_compressor():
    ext = PerMessageDeflate()
    ext.accept("permessage-deflate")
    ws = _wsproto.new_server([ext])
    data = _wsproto.compress_message(ext, ws, True, b"hello hello hello")
    inflater = zlib.decompressobj(-15)
    assert inflater.decompress(data + b"\x00\x00\xff\xff") == b"hello hello hello"


def test_no_other_module_reads_wsproto_internals():
    """The rule this file guards: one home for wsproto's private names."""
    private = re.compile(r"\._proto\b|\._events\b|\._frame_decoder|\._message_decoder|"
                         r"\._decompressor|\._inbound_|\.buffer\.buffer")
    root = Path(geworker.__file__).parent
    offenders = [f"{path.relative_to(root)}:{n}"
                 for path in root.rglob("*.py") if path.name != "_wsproto.py"
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if private.search(line)]
    assert offenders == [], "wsproto internals read outside geworker/websocket/_wsproto.py"
