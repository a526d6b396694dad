"""The code in the README and docs/ is run, so a doc that drifts from the code fails.

Every ```python block of a document runs, in order, in one fresh interpreter
(blocks build on the ones before them, as a reader reads them). A few blocks
are also served by real gunicorn and talked to.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request

import pytest

from conftest import ROOT, LineClient, free_port

ALL_DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]
#: What a block may take for granted: an earlier server in another document.
PRELUDE = "from geworker import Server\nserver = Server('tcp://127.0.0.1:9')\n"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks(doc: str) -> list[str]:
    return BLOCK.findall((ROOT / doc).read_text())


DOCS = [doc for doc in ALL_DOCS if python_blocks(doc)]


def on_port(code: str, port: int) -> str:
    """The block with its first listener address moved to 127.0.0.1:port."""
    return re.sub(r"0\.0\.0\.0:\d+", f"127.0.0.1:{port}", code, count=1)


@pytest.mark.parametrize("doc", DOCS)
def test_python_blocks_run(doc, tmp_path):
    blocks = python_blocks(doc)
    pytest.importorskip("flask")  # docs/http.md mounts a Flask app
    (tmp_path / "www").mkdir()
    code = PRELUDE + "\n".join(blocks).replace("/srv/www", str(tmp_path / "www"))
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, f"{doc}: its python blocks fail:\n{proc.stderr}"


def test_every_doc_block_is_seen():
    # A change to the fence syntax must not turn the test above into one that checks nothing.
    assert len(python_blocks("README.md")) == 1
    assert sum(len(python_blocks(doc)) for doc in ALL_DOCS) >= 8
    assert {"README.md", "docs/guide.md", "docs/http.md", "docs/websocket.md",
            "docs/clients.md"} <= set(DOCS)


def test_readme_ten_lines_echo(gunicorn):
    port = free_port()
    app = on_port(python_blocks("README.md")[0], port)
    assert f"text://127.0.0.1:{port}" in app
    g = gunicorn(app, workers=1)
    client = LineClient(port)
    assert client.request("hello") == "hello"
    client.close()
    g.stop()


def test_http_guide_first_example(gunicorn):
    port = free_port()
    gunicorn(on_port(python_blocks("docs/http.md")[0], port), workers=1)
    base = f"http://127.0.0.1:{port}"
    assert urllib.request.urlopen(f"{base}/", timeout=5).read() == b"hello"
    assert urllib.request.urlopen(f"{base}/api", timeout=5).read() == b'{"you":"127.0.0.1"}'
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{base}/elsewhere", timeout=5)
    assert missing.value.code == 404


def test_websocket_guide_first_example(gunicorn):
    websocket = pytest.importorskip("websocket")
    port = free_port()
    gunicorn(on_port(python_blocks("docs/websocket.md")[0], port), workers=1)
    url = f"ws://127.0.0.1:{port}/"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=5)
    assert refused.value.status_code == 401
    ws = websocket.create_connection(url, timeout=5, cookie="session=1",
                                     subprotocols=["chat.v1"])
    assert ws.subprotocol == "chat.v1"
    ws.send("hi")
    assert ws.recv() == "hi"
    ws.close()


def test_messaging_guide_chat_room_across_workers(gunicorn):
    websocket = pytest.importorskip("websocket")
    port = free_port()
    gunicorn(on_port(python_blocks("docs/messaging.md")[0], port), workers=2)
    url = f"ws://127.0.0.1:{port}/"
    ann = websocket.create_connection(url, timeout=5)
    ann.send("/join lobby ann")
    assert ann.recv() == "members: ann"
    # bob may land on either worker; the room and its member list span both
    bob = websocket.create_connection(url, timeout=5)
    bob.send("/join lobby bob")
    assert bob.recv() == "members: ann, bob"
    assert ann.recv() == "bob joined"
    bob.send("hello")
    assert ann.recv() == "bob: hello"
    assert bob.recv() == "bob: hello"
    bob.close()
    assert ann.recv() == "bob left"
    ann.close()
