"""The Workerman adapter: per-connection state lives on the protocol instance."""

from __future__ import annotations

import pytest

from geworker import RemoteProtocolError, WorkermanProtocol


class Greeting(WorkermanProtocol):
    """Lines; the first one is a `HELLO name` handshake answered with `WELCOME name`."""

    def __init__(self, max_package_size: int = 1024) -> None:
        super().__init__(max_package_size)
        self.name: str | None = None  # Workerman would keep this on $connection
        self._answer = b""

    def input(self, buffer: bytes) -> int:
        pos = buffer.find(b"\n")
        return 0 if pos < 0 else pos + 1

    def decode(self, package: bytes) -> str:
        line = package.rstrip(b"\r\n").decode()
        if self.name is None:
            if not line.startswith("HELLO "):
                return "?"
            self.name = line[6:]
            self._answer += f"WELCOME {self.name}\n".encode()
            return f"{self.name} joined"
        return f"{self.name}: {line}"

    def encode(self, message: str) -> bytes:
        return message.encode() + b"\n"

    def data_to_send(self) -> bytes:
        out, self._answer = self._answer, b""
        return out


def test_state_is_per_connection_even_when_interleaved():
    alice, bob = Greeting(), Greeting()
    assert alice.receive_data(b"HELLO al") == []
    assert bob.receive_data(b"HELLO bob\nhi") == ["bob joined"]
    assert alice.receive_data(b"ice\nhey\n") == ["alice joined", "alice: hey"]
    assert bob.receive_data(b" there\n") == ["bob: hi there"]
    assert alice.data_to_send() == b"WELCOME alice\n" and alice.data_to_send() == b""
    assert bob.data_to_send() == b"WELCOME bob\n"
    assert not alice.has_partial_message


def test_input_may_reject_and_size_is_bounded():
    class Strict(Greeting):
        def input(self, buffer: bytes) -> int:
            return -1 if buffer.startswith(b"!") else super().input(buffer)

    with pytest.raises(RemoteProtocolError, match=r"Strict.input\(\) rejected the data"):
        Strict().receive_data(b"!oops\n")
    with pytest.raises(RemoteProtocolError, match="exceeds max_package_size=16"):
        Greeting(16).receive_data(b"x" * 17)
