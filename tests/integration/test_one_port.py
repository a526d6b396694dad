"""A Flask app and WebSocket callbacks on one port and one set of workers, over TLS too
(https:// for Flask, wss:// for the WebSocket), with real gunicorn -w 2 and real clients."""

from __future__ import annotations

import http.client
import ssl

import pytest

from conftest import free_port

trustme = pytest.importorskip("trustme")
websocket = pytest.importorskip("websocket")
pytest.importorskip("flask")

ONE_PORT_APP = """
import os
from flask import Flask
from geworker import Server

flask_app = Flask(__name__)

@flask_app.route("/hello")
def hello():
    return "hello from flask"

scheme = "https" if os.environ.get("TLS") else "http"
server = Server(f"{scheme}://127.0.0.1:{os.environ['PORT_A']}", name="one-port")
server.mount_wsgi(flask_app)

@server.on_websocket_connect
def connect(conn, request):
    if request.path != "/ws":
        request.reject(404)

@server.on_websocket_message
def echo(conn, message):
    conn.send(f"ws:{message}")
"""


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    directory = tmp_path_factory.mktemp("certs")
    cert_file, key_file, ca_file = (directory / n for n in ("cert.pem", "key.pem", "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    return cert_file, key_file, ca_file


def test_flask_and_websocket_share_one_port(gunicorn):
    port = free_port()
    gunicorn(ONE_PORT_APP, workers=2, env={"PORT_A": str(port)})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/hello")
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"hello from flask")
    ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws", timeout=5)
    ws.send("hi")
    assert ws.recv() == "ws:hi"
    ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(f"ws://127.0.0.1:{port}/elsewhere", timeout=5)
    assert info.value.status_code == 404


def test_https_flask_and_wss_on_one_port(gunicorn, certs):
    cert_file, key_file, ca_file = certs
    port = free_port()
    gunicorn(ONE_PORT_APP, workers=2, env={"PORT_A": str(port), "TLS": "1"},
             args=["--certfile", str(cert_file), "--keyfile", str(key_file)])
    context = ssl.create_default_context(cafile=str(ca_file))
    c = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    c.request("GET", "/hello")
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"hello from flask")
    ws = websocket.create_connection(f"wss://127.0.0.1:{port}/ws", timeout=5,
                                     sslopt={"ca_certs": str(ca_file)})
    ws.send("secure")
    assert ws.recv() == "ws:secure"
    ws.send_binary(b"\x00\x01" * 40000)  # larger than one TLS record
    assert ws.recv() == "ws:" + repr(b"\x00\x01" * 40000)
    ws.close()


WSS_ECHO = """
import os
from geworker import Server

server = Server(f"wss://127.0.0.1:{os.environ['PORT_A']}")

@server.on_message
def echo(conn, message):
    conn.send(message)
"""


def test_wss_listener_echo(gunicorn, certs):
    cert_file, key_file, ca_file = certs
    port = free_port()
    gunicorn(WSS_ECHO, workers=2, env={"PORT_A": str(port)},
             args=["--certfile", str(cert_file), "--keyfile", str(key_file)])
    ws = websocket.create_connection(f"wss://127.0.0.1:{port}/", timeout=5,
                                     sslopt={"ca_certs": str(ca_file)})
    big = "x" * 300_000
    ws.send(big)
    assert ws.recv() == big
    ws.send_binary(b"\xff" * 1000)
    assert ws.recv() == b"\xff" * 1000
    ws.close()
