"""The frames messaging sends between processes (sans-IO: bytes in, frames out).

One frame is one operation::

    u32  length of what follows
    u8   operation (:class:`Op`)
    u8   payload kind: 0 none, 1 str (UTF-8), 2 bytes
    u32  length of the arguments
    ...  the arguments, a JSON array
    ...  the payload (the message itself, never inside the JSON)

The same frames travel over the embedded backend's unix sockets and, as
Redis pub/sub payloads, through Redis.
"""

from __future__ import annotations

import enum
import json
import struct
from typing import Any

from ..errors import LocalProtocolError, RemoteProtocolError

__all__ = ["MAX_ARGS", "MAX_MESSAGE", "Frame", "FrameReader", "Op", "check_message", "encode"]

#: Largest message a send carries (text as UTF-8, or bytes).
MAX_MESSAGE = 4 * 1024 * 1024
#: Largest argument array (exclude lists, sessions in query answers), as JSON.
MAX_ARGS = 16 * 1024 * 1024

_HEAD = struct.Struct("!IBBI")
_NONE, _TEXT, _BYTES = 0, 1, 2


class Op(enum.IntEnum):
    """What a frame asks of the process that receives it."""

    CLIENT = 1      # [client_id]            send the payload to one connection
    UID = 2         # [uid, exclude]         ... to the connections of a uid
    GROUP = 3       # [group, exclude]       ... to the members of a group
    ALL = 4         # [server|None, exclude] ... to every message connection
    CLOSE = 5       # [client_id]            close it (payload: a last message)
    UNGROUP = 6     # [group]                empty the group
    BIND = 7        # [client_id, uid]
    UNBIND = 8      # [client_id]
    JOIN = 9        # [client_id, group]
    LEAVE = 10      # [client_id, group]
    SESSION = 11    # [client_id, session, merge]
    QUERY = 20      # [request_id, name, params]
    REPLY = 21      # [request_id, answer]


class Frame:
    """One decoded frame."""

    __slots__ = ("args", "op", "payload")

    def __init__(self, op: Op, args: list[Any], payload: Any = None) -> None:
        self.op = op
        self.args = args
        self.payload = payload

    def __repr__(self) -> str:
        return f"<Frame {self.op.name} {self.args!r}>"


def check_message(message: Any) -> tuple[int, bytes]:
    """(payload kind, bytes) of a message, or raise for a wrong type or size.

    Raises:
        LocalProtocolError: for a message that is not ``str`` or bytes-like,
            or longer than :data:`MAX_MESSAGE` bytes.
    """
    if isinstance(message, str):
        kind, data = _TEXT, message.encode()
    elif isinstance(message, (bytes, bytearray, memoryview)):
        kind, data = _BYTES, bytes(message)
    else:
        raise LocalProtocolError(
            f"messaging carries str or bytes, not {type(message).__name__}")
    if len(data) > MAX_MESSAGE:
        raise LocalProtocolError(
            f"a message is at most {MAX_MESSAGE} bytes, this one is {len(data)}")
    return kind, data


def encode(op: Op, args: list[Any], message: Any = None) -> bytes:
    """One frame, ready to write."""
    if message is None:
        kind, data = _NONE, b""
    else:
        kind, data = check_message(message)
    packed = json.dumps(args, separators=(",", ":")).encode()
    if len(packed) > MAX_ARGS:
        raise LocalProtocolError(f"the arguments of a {op.name} are over {MAX_ARGS} bytes")
    return _HEAD.pack(_HEAD.size - 4 + len(packed) + len(data), op, kind, len(packed)) \
        + packed + data


def decode(body: bytes) -> Frame:
    """A frame from its bytes after the length word."""
    _, op, kind, args_length = _HEAD.unpack_from(b"\0\0\0\0" + body[:6])
    try:
        args = json.loads(body[6:6 + args_length])
        payload: Any = body[6 + args_length:]
        if kind == _TEXT:
            payload = payload.decode()
        elif kind == _NONE:
            payload = None
        return Frame(Op(op), args if isinstance(args, list) else [], payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RemoteProtocolError(f"malformed messaging frame: {exc}") from None


class FrameReader:
    """Collects bytes from a stream and returns the whole frames in them."""

    #: The largest frame accepted: a message plus its arguments.
    max_frame = MAX_MESSAGE + MAX_ARGS + _HEAD.size

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return the frames it completes (raises ``RemoteProtocolError``)."""
        buffer = self._buffer
        buffer += data
        frames = []
        start = 0
        while len(buffer) - start >= 4:
            (length,) = struct.unpack_from("!I", buffer, start)
            if length < _HEAD.size - 4 or length > self.max_frame:
                raise RemoteProtocolError(f"a messaging frame of {length} bytes")
            if len(buffer) - start - 4 < length:
                break
            frames.append(decode(bytes(buffer[start + 4:start + 4 + length])))
            start += 4 + length
        if start:
            del buffer[:start]
        return frames
