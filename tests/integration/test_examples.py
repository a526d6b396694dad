"""The shipped examples start and answer (real gunicorn).

An example started by :func:`running` is run with the command its module docstring gives
(:func:`documented`), its addresses moved to free ports through the environment variables it
reads; older ones have their addresses rewritten in a copy of their source (:func:`load`).
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import re
import shlex
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
import websocket

from conftest import ROOT, Gunicorn, LineClient, free_port, wait_until
from support.ops import run_cli

EXAMPLES = ROOT / "examples"
#: What an example's docstring gives to run it: ``VAR=value ... gunicorn|flask|python -...``.
COMMAND = re.compile(r"(?:^|\s)((?:[A-Z][A-Z0-9_]*=\S+\s+)*(?:gunicorn|flask|python)\s+-.*)$")
#: Modules of examples/ that are helpers of an example, not run themselves.
HELPERS = {"push/common.py"}


def load(name: str, **ports: int) -> str:
    source = (EXAMPLES / name).read_text()
    for old, new in ports.items():
        source = re.sub(rf"127\.0\.0\.1:{old[1:]}\b", f"127.0.0.1:{new}", source)
    return source


def documented(name: str) -> tuple[dict[str, str], list[str]]:
    """The command in the module docstring of ``examples/NAME``: its settings and its words."""
    doc = ast.get_docstring(ast.parse((EXAMPLES / name).read_text())) or ""
    for line in doc.splitlines():
        found = COMMAND.search(line.strip())
        if found:
            words = shlex.split(found.group(1))
            settings = {}
            while "=" in words[0]:
                key, _, value = words.pop(0).partition("=")
                settings[key] = value
            return settings, words
    raise AssertionError(f"examples/{name}: no command in its docstring")


def test_every_example_says_how_to_run_it():
    names = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.py")}
    assert {"game_tick.py", "jsonrpc.py", "jsonrpc_client.py", "proxy.py", "push/app.py"} <= names
    for name in sorted(names - HELPERS):
        _, words = documented(name)
        module = "examples." + name.removesuffix(".py").replace("/", ".")
        assert module in " ".join(words), f"examples/{name}: its command runs {words}"


@contextlib.contextmanager
def running(tmp: Path, name: str, env: dict[str, str],
            allow_traceback: bool | Collection[str] = ()) -> Iterator[Gunicorn]:
    """``examples/NAME`` under gunicorn as its docstring says, in ``tmp``, with ``env`` added.

    Waits until every worker serves; at the end stops it and checks its log.
    """
    settings, words = documented(name)
    assert words[:3] == ["gunicorn", "-k", "geworker.Worker"], words
    workers = int(words[words.index("-w") + 1]) if "-w" in words else 1
    g = Gunicorn(tmp, None, [], {**settings, **env}, workers, argv=words[1:],
                 allow_traceback=allow_traceback)
    try:
        g.wait_ready()
        yield g
    finally:
        g.stop()
    g.check_log()


def test_frame_example(gunicorn):
    port = free_port()
    gunicorn(load("frame_echo.py", p2346=port), workers=1)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">I", 9) + b"hello")
        assert s.recv(100) == struct.pack(">I", 9) + b"hello"


def test_udp_example(gunicorn):
    port = free_port(socket.SOCK_DGRAM)
    gunicorn(load("udp_echo.py", p2347=port), workers=1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(b"ping", ("127.0.0.1", port))
        assert s.recvfrom(100)[0] == b"ping"


def test_chat_example(gunicorn):
    text, frame = free_port(), free_port()
    gunicorn(load("chat.py", p2348=text, p2349=frame), workers=2)
    alice = LineClient(text)
    bob = LineClient(text)

    def next_said(client: LineClient) -> str:
        """The next line that is not a join notice (they race with the test on 2 workers)."""
        line = client.recv()
        while line.endswith(" joined"):
            line = client.recv()
        return line

    bob.send("/nick bob")
    assert next_said(bob) == "* you are bob"
    assert next_said(alice).endswith(" is now bob")
    bob.send("hi all")
    assert next_said(alice) == "<bob> hi all"  # wherever alice's worker is
    assert next_said(bob) == "<bob> hi all"
    # Names are unique across workers, and /who, /msg reach every worker.
    def until(client: LineClient, start: str) -> str:
        """The next line that starts with ``start`` (notices of others come in between)."""
        line = client.recv()
        while not line.startswith(start):
            line = client.recv()
        return line

    people = [LineClient(text) for _ in range(6)]
    for i, p in enumerate(people):
        p.send(f"/nick p{i}")
        until(p, f"* you are p{i}")
    alice.send("/who")
    names = until(alice, "* here: ")[len("* here: "):].split(", ")
    assert len(names) == len(set(names)) == 8 and {"bob", "p0", "p5"} <= set(names)
    alice.send("/msg p5 psst")
    assert until(people[5], "[").endswith("whispers] psst")
    bob.send("/nick p0")
    line = until(bob, "* p0 is")
    assert line == "* p0 is taken"


#: The upstream of the proxy tests: a tcp:// echo that applies backpressure itself.
ECHO_UPSTREAM = """
from geworker import Server

server = Server("tcp://127.0.0.1:{port}", name="echo")


@server.on_message
def echo(conn, data):
    conn.send(data)


@server.on_buffer_full
def full(conn):
    conn.pause_recv()


@server.on_buffer_drain
def drain(conn):
    conn.resume_recv()
"""


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """examples/proxy.py under gunicorn, in front of a geworker echo server; its port and pid."""
    upstream_port, port = free_port(), free_port()
    tmp = tmp_path_factory.mktemp("proxy")
    (tmp / "upstream").mkdir()
    (tmp / "proxy").mkdir()
    upstream = Gunicorn(tmp / "upstream", ECHO_UPSTREAM.format(port=upstream_port), [], {}, 1)
    env = {"PROXY_ADDRESS": f"127.0.0.1:{port}", "PROXY_UPSTREAM": f"tcp://127.0.0.1:{upstream_port}"}
    try:
        upstream.wait_ready()
        with running(tmp / "proxy", "proxy.py", env) as front:
            [worker] = front.worker_pids()
            yield port, worker
    finally:
        upstream.stop()


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Sender(threading.Thread):
    """Sends ``blocks`` numbered 64 KiB blocks on ``sock``, counting the bytes handed over."""

    def __init__(self, sock: socket.socket, blocks: int) -> None:
        super().__init__(daemon=True)
        self.sock, self.blocks = sock, blocks
        self.sent = 0
        self.digest = hashlib.sha256()
        self.error: Exception | None = None
        self.start()

    @staticmethod
    def block(i: int) -> bytes:
        return i.to_bytes(8, "big") * 8192

    def run(self) -> None:
        try:
            for i in range(self.blocks):
                data = self.block(i)
                self.digest.update(data)
                self.sock.sendall(data)
                self.sent += len(data)
        except OSError as exc:
            self.error = exc


def receive(sock: socket.socket, size: int) -> bytes:
    digest = hashlib.sha256()
    got = 0
    while got < size:
        chunk = sock.recv(1 << 20)
        assert chunk, f"EOF after {got} of {size} bytes"
        digest.update(chunk)
        got += len(chunk)
    return digest.digest()


def test_proxy_example_carries_10_mb_intact(proxy):
    port, _ = proxy
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        started = time.perf_counter()
        sender = Sender(sock, 160)  # 160 x 64 KiB = 10 MiB
        digest = receive(sock, 160 * 65536)
        elapsed = time.perf_counter() - started
        sender.join(10)
        assert sender.error is None and digest == sender.digest.digest()
    print(f"\n10 MiB through examples/proxy.py and back in {elapsed:.2f}s")


def test_proxy_example_pauses_its_upstream_for_a_reader_that_stops(proxy):
    port, worker = proxy
    with socket.create_connection(("127.0.0.1", port), timeout=5) as warm:  # imports done
        warm.sendall(b"warm up")
        assert warm.recv(100) == b"warm up"
    baseline = rss(worker)
    blocks = 2048  # 128 MiB: far more than the kernel buffers on the way can hold
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sender = Sender(sock, blocks)  # ... and nothing is read for now

        def stalled() -> bool:
            before = sender.sent
            time.sleep(1.0)
            return sender.sent == before

        wait_until(stalled, 30, what="the sender to be held back")
        held = rss(worker) - baseline
        assert sender.sent < blocks * 65536, "nothing held the sender back"
        assert held < 24 * 2**20, f"the proxy grew by {held / 2**20:.1f} MiB"
        stalled_at = sender.sent
        digest = receive(sock, blocks * 65536)  # reading again: everything, in order
        sender.join(30)
        assert sender.error is None and digest == sender.digest.digest()
    print(f"\nreader stopped: sender held after {stalled_at / 2**20:.1f} MiB; proxy RSS "
          f"{baseline / 2**20:.1f} MiB -> +{held / 2**20:.1f} MiB")


# -- examples/push/ -----------------------------------------------------------------------


class Push:
    """examples/push/app.py running in ``tmp`` on ``port``, with its documented secret."""

    def __init__(self, tmp: Path, port: int, secret: str) -> None:
        self.tmp, self.port, self.secret = tmp, port, secret

    def http(self, method: str, path: str, body: bytes = b"",
             secret: str | None = None) -> tuple[int, dict]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {} if secret is None else {"X-Push-Secret": secret}
            conn.request(method, path, body=body, headers=headers)
            answer = conn.getresponse()
            return answer.status, json.loads(answer.read())
        finally:
            conn.close()

    def push(self, uid: str, message, secret: str | None = None) -> tuple[int, dict]:
        body = json.dumps({"uid": uid, "message": message}).encode()
        return self.http("POST", "/push", body, self.secret if secret is None else secret)

    def token(self, uid: str) -> str:
        status, body = self.http("GET", f"/token?uid={uid}", secret=self.secret)
        assert status == 200, body
        return body["token"]

    def socket(self) -> websocket.WebSocket:
        return websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws", timeout=10)

    def bind(self, uid: str) -> tuple[websocket.WebSocket, str]:
        """A WebSocket bound to ``uid`` with a token from ``GET /token``, and its client id."""
        ws = self.socket()
        ws.send(self.token(uid))
        answer = json.loads(ws.recv())
        assert answer["bound"] == uid, answer
        return ws, answer["client_id"]


def signed(uid: str, expires: int, secret: str) -> str:
    """A token in the documented form, signed here (with the right secret or not)."""
    signature = hmac.new(secret.encode(), f"{uid}:{expires}".encode(), hashlib.sha256)
    return f"{uid}:{expires}:{signature.hexdigest()}"


def close_frame(ws: websocket.WebSocket) -> tuple[int, str]:
    """The code and reason of the close frame the server sends next."""
    opcode, data = ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE, (opcode, data)
    return struct.unpack("!H", data[:2])[0], data[2:].decode()


@pytest.fixture(scope="module")
def push(tmp_path_factory):
    tmp, port = tmp_path_factory.mktemp("push"), free_port()
    settings, _ = documented("push/app.py")
    with running(tmp, "push/app.py", {"PUSH_ADDRESS": f"127.0.0.1:{port}"}):
        yield Push(tmp, port, settings["PUSH_SECRET"])


def test_push_reaches_a_uid_on_each_of_the_4_workers(push):
    held, spare = {}, []  # worker node (first 12 hex of a client id) -> (uid, socket)
    for i in range(40):
        ws, client_id = push.bind(f"user{i}")
        if client_id[:12] in held:
            spare.append(ws)
        else:
            held[client_id[:12]] = (f"user{i}", ws)
        if len(held) == 4:
            break
    assert len(held) == 4, f"bound uids on {len(held)} workers only"
    for ws in spare:
        ws.close()

    def one_uid_per_worker():  # what `geworker status --json` says each worker holds
        out = run_cli(push.tmp, "status", "--json")
        assert out.returncode == 0, out.stderr
        workers = json.loads(out.stdout)["workers"]
        return [w.get("messaging", {}).get("uids") for w in workers] == [1, 1, 1, 1]

    wait_until(one_uid_per_worker, 15, interval=0.2, what="one bound uid in each worker")
    for uid, ws in held.values():
        assert push.push(uid, {"for": uid}) == (200, {"delivered": 1})
        assert json.loads(ws.recv()) == {"message": {"for": uid}}
    # A uid with two connections (a phone and a laptop) gets it on both.
    uid, first = next(iter(held.values()))
    second, _ = push.bind(uid)
    assert push.push(uid, "twice") == (200, {"delivered": 2})
    assert json.loads(first.recv()) == json.loads(second.recv()) == {"message": "twice"}
    for _, ws in held.values():
        ws.close()
    second.close()


def test_push_answers_401_404_and_400(push):
    ws, _ = push.bind("carol")
    assert push.push("carol", "hi", secret="wrong") == (401, {"error": "wrong or missing "
                                                              "X-Push-Secret"})
    status, _ = push.http("POST", "/push", json.dumps({"uid": "carol", "message": 1}).encode())
    assert status == 401  # no secret at all
    assert push.http("GET", "/token?uid=carol")[0] == 401
    assert push.push("nobody-here", "hi") == (404, {"delivered": 0})
    assert push.http("POST", "/push", b'{"uid": "carol", ', push.secret)[0] == 400
    assert push.http("POST", "/push", b'{"uid": 1, "message": 2}', push.secret)[0] == 400
    assert push.http("POST", "/push", b'["carol", "hi"]', push.secret)[0] == 400
    ws.settimeout(0.3)
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv()  # none of them was delivered
    ws.close()


def test_push_refuses_to_bind_with_a_forged_expired_or_borrowed_token(push):
    later = int(time.time()) + 600
    alice = push.token("alice")
    _, expires, signature = alice.split(":")
    refused = {
        signed("alice", later, "not the secret"): "bad token signature",
        f"mallory:{expires}:{signature}": "bad token signature",  # alice's signature
        signed("alice", int(time.time()) - 1, push.secret): "token expired",
        "alice": "malformed token",
    }
    for token, reason in refused.items():
        ws = push.socket()
        ws.send(token)
        assert close_frame(ws) == (1008, reason), token
        ws.close()
    assert push.push("mallory", "x") == (404, {"delivered": 0})
    ws, _ = push.bind("alice")  # the real one binds
    ws.close()


def test_a_flask_app_in_another_process_pushes_through_the_messenger(push):
    _, words = documented("push/website.py")
    assert words[0] == "flask"
    port = free_port()
    words[words.index("--port") + 1] = str(port)
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    log = open(push.tmp / "flask.log", "wb")  # noqa: SIM115 (closed below)
    flask = subprocess.Popen([sys.executable, "-m", *words], cwd=push.tmp, env=env,
                             stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: flask.poll() is None and connectable(port), 20,
                   what=f"the Flask app\n{(push.tmp / 'flask.log').read_text()}")
        ws, _ = push.bind("dave")

        def notify(uid: str) -> tuple[int, dict]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("POST", "/notify", json.dumps({"uid": uid, "message": "shipped"}),
                         {"Content-Type": "application/json"})
            answer = conn.getresponse()
            result = answer.status, json.loads(answer.read())
            conn.close()
            return result

        assert notify("dave") == (200, {"delivered": 1})
        assert json.loads(ws.recv()) == {"message": "shipped"}
        assert notify("erin") == (404, {"delivered": 0})
        ws.close()
    finally:
        flask.terminate()
        flask.wait(10)
        log.close()
    assert "Traceback" not in (push.tmp / "flask.log").read_text()


def connectable(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


# -- examples/jsonrpc.py ----------------------------------------------------------------------

#: The examples of section 7 of the JSON-RPC 2.0 specification: (request, answer or None).
#: The spec writes some on several lines; here each is one line, as the example reads them.
SPEC_EXAMPLES = [
    # positional parameters
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
     {"jsonrpc": "2.0", "result": 19, "id": 1}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
     {"jsonrpc": "2.0", "result": -19, "id": 2}),
    # named parameters
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, '
     '"id": 3}', {"jsonrpc": "2.0", "result": 19, "id": 3}),
    ('{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, '
     '"id": 4}', {"jsonrpc": "2.0", "result": 19, "id": 4}),
    # notifications
    ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
    ('{"jsonrpc": "2.0", "method": "foobar"}', None),
    # a method that does not exist
    ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
     {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "1"}),
    # invalid JSON
    ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    # an invalid Request object
    ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
     {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}),
    # a batch that is invalid JSON
    ('[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, '
     '{"jsonrpc": "2.0", "method"]',
     {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}),
    # an empty array
    ("[]", {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"},
            "id": None}),
    # an invalid batch, not empty
    ("[1]", [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"},
              "id": None}]),
    ("[1,2,3]", [{"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"},
                  "id": None}] * 3),
    # a batch
    ('[{"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"}, '
     '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}, '
     '{"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"}, '
     '{"foo": "boo"}, '
     '{"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"}, '
     '{"jsonrpc": "2.0", "method": "get_data", "id": "9"}]',
     [{"jsonrpc": "2.0", "result": 7, "id": "1"},
      {"jsonrpc": "2.0", "result": 19, "id": "2"},
      {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None},
      {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": "5"},
      {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"}]),
    # a batch of notifications only: nothing is returned
    ('[{"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]}, '
     '{"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}]', None),
]


def unordered(answer):
    """A batch's answers in a canonical order (the spec lets a server answer in any)."""
    if isinstance(answer, list):
        return sorted(json.dumps(a, sort_keys=True) for a in answer)
    return answer


@pytest.fixture(scope="module")
def jsonrpc(tmp_path_factory):
    tmp, port = tmp_path_factory.mktemp("jsonrpc"), free_port()
    # divide(1, 0) below raises in the method on purpose: its traceback is logged.
    with running(tmp, "jsonrpc.py", {"JSONRPC_ADDRESS": f"127.0.0.1:{port}"},
                 allow_traceback=["ZeroDivisionError: division by zero"]):
        yield tmp, port


def test_jsonrpc_answers_the_examples_of_the_spec(jsonrpc):
    _, port = jsonrpc
    client = LineClient(port)
    for request, expected in SPEC_EXAMPLES:
        client.send(request)
        if expected is not None:
            assert unordered(json.loads(client.recv())) == unordered(expected), request
    # Nothing answered the notifications: the next line answers the next request.
    last = '{"jsonrpc": "2.0", "method": "get_data", "id": "last"}'
    assert json.loads(client.request(last)) == {"jsonrpc": "2.0", "result": ["hello", 5],
                                                "id": "last"}
    client.close()


def test_jsonrpc_invalid_params_and_internal_errors(jsonrpc):
    _, port = jsonrpc
    client = LineClient(port)

    def error(request: str) -> tuple[int, object]:
        answer = json.loads(client.request(request))
        return answer["error"]["code"], answer["id"]

    assert error('{"jsonrpc": "2.0", "method": "subtract", "params": [1], "id": 7}') == (-32602, 7)
    assert error('{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 1, "x": 2}, '
                 '"id": 8}') == (-32602, 8)
    assert error('{"jsonrpc": "2.0", "method": "divide", "params": [1, 0], "id": 9}') == (-32603, 9)
    assert error('{"jsonrpc": "1.0", "method": "get_data", "id": 10}') == (-32600, None)
    assert error('{"jsonrpc": "2.0", "method": "get_data", "id": [1]}') == (-32600, None)
    assert error('{"jsonrpc": "2.0", "method": "get_data", "params": 3, "id": 1}') == (-32600, None)
    assert error("[" * 50_000 + "]" * 50_000) == (-32700, None)  # too deep for the parser
    client.close()


def test_jsonrpc_client_runs_as_its_docstring_says(jsonrpc):
    tmp, port = jsonrpc
    _, words = documented("jsonrpc_client.py")
    assert words[:3] == ["python", "-m", "examples.jsonrpc_client"], words
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, *words[1:3], f"text://127.0.0.1:{port}"], cwd=tmp,
                         env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "subtract(42, 23) = 19",
        "subtract(minuend=42, subtrahend=23) = 19",
        "batch sum(1, 2, 4), get_data() = [7, ['hello', 5]]",
        "foobar() -> -32601: Method not found",
    ]


# -- examples/game_tick.py --------------------------------------------------------------------


class Player:
    """A WebSocket player of examples/game_tick.py: its client id and the states it saw."""

    def __init__(self, port: int) -> None:
        self.ws = websocket.create_connection(f"ws://127.0.0.1:{port}/", timeout=10)
        self.id: str = self.next()["you"]  # the greeting comes before any state

    def next(self) -> dict:
        return json.loads(self.ws.recv())

    def states_for(self, seconds: float) -> list[dict]:
        deadline, states = time.monotonic() + seconds, []
        while time.monotonic() < deadline:
            states.append(self.next())
        return states

    def until(self, predicate, timeout: float = 5.0) -> dict:
        """The first state for which ``predicate(state)`` holds."""
        deadline, state = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            state = self.next()
            if predicate(state):
                return state
        raise AssertionError(f"no such state within {timeout}s (last: {state})")

    def steer(self, dx: int, dy: int) -> None:
        self.ws.send(json.dumps({"dx": dx, "dy": dy}))


def test_game_ticks_at_20_hz_for_players_on_different_workers(tmp_path):
    port = free_port()
    with running(tmp_path, "game_tick.py", {"GAME_ADDRESS": f"127.0.0.1:{port}"}):
        players = [Player(port)]
        while len({p.id[:12] for p in players}) < 2 and len(players) < 20:
            players.append(Player(port))
        a = players[0]
        b = next((p for p in players if p.id[:12] != a.id[:12]), None)
        assert b is not None, "every player landed on one worker"
        for p in players:
            if p not in (a, b):
                p.ws.close()
        b.until(lambda s: set(s["players"]) == {a.id, b.id})
        # About 20 states a second, from one ticking worker (one tick counter), to both.
        seen = b.states_for(2.0)
        ticks = [s["tick"] for s in seen]
        assert ticks == sorted(set(ticks)), ticks
        assert 20 <= len(seen) <= 60, f"{len(seen)} states in 2 s"
        assert a.until(lambda s: s["tick"] >= ticks[-1])["tick"] in (ticks[-1], ticks[-1] + 1)
        # An input from a (on one worker) moves a in what b (on another) sees, and back.
        start = b.next()["players"][a.id]
        a.steer(1, 0)
        moved = b.until(lambda s: s["players"][a.id][0] >= start[0] + 5)
        assert moved["players"][a.id][1] == start[1] and moved["players"][b.id] == [50, 50]
        b.steer(0, -1)
        a.until(lambda s: s["players"][b.id][1] <= 45)
        # A player who leaves drops out of the world.
        b.ws.close()
        a.until(lambda s: set(s["players"]) == {a.id})
        a.ws.close()
