"""The WebSocket test server (tests/integration/test_websocket.py), set up by environment.

* WS_PORT: ``websocket://`` echo, 64 KiB messages at most; ``on_websocket_connect``
  rejects ``/deny`` (403), ``/teapot`` (HTTPError 418), fails on ``/crash``; accepts the ``chat``
  subprotocol when offered and adds ``X-Hello: world``.
* KA_PORT: the same with keepalive pings every 0.3 s, a 0.5 s pong timeout and
  1 s to send the opening handshake.
* HTTP_PORT: ``http://`` answering ``hello http``; upgraded WebSocket
  messages go to ``on_websocket_message`` (echoed with a ``ws:`` prefix).
* CLOSE_LOG: a file where ``on_close`` appends ``<path> <close code>``.
"""

import json
import os

import gevent

from geworker import Server
from geworker.http import HTTPError, Request

server = Server(f"websocket://127.0.0.1:{os.environ['WS_PORT']}", name="ws",
                websocket_max_message_size=64 * 1024)
if os.environ.get("KA_PORT"):
    server.listen(f"ws://127.0.0.1:{os.environ['KA_PORT']}", websocket_ping_interval=0.3,
                  websocket_ping_timeout=0.5, websocket_handshake_timeout=1.0)
if os.environ.get("HTTP_PORT"):
    server.listen(f"http://127.0.0.1:{os.environ['HTTP_PORT']}")


@server.on_websocket_connect
def connect(conn, request):
    if request.path == "/deny":
        request.reject(403, "denied", {"X-Reason": "test"})
        return
    if request.path == "/teapot":
        raise HTTPError(418, "short and stout")
    if request.path == "/crash":
        raise RuntimeError("on_websocket_connect failed")
    conn.context["info"] = {
        "path": request.path,
        "query": dict(request.query.items()),
        "cookies": request.cookies,
        "subprotocols": request.subprotocols,
        "agent": request.headers.get("x-agent", ""),
    }
    conn.send("welcome")  # held until the handshake completes
    request.accept(subprotocol="chat" if "chat" in request.subprotocols else None,
                   headers={"X-Hello": "world"})


@server.on_message
def message(conn, message):
    if isinstance(message, Request):
        conn.send("hello http")
    elif message == "info":
        conn.send(json.dumps(conn.context["info"]))
    elif message == "pid":
        conn.send(str(os.getpid()))
    elif message == "slow":
        gevent.sleep(1)
        conn.send("slow done")
    elif message == "boom":
        raise RuntimeError("boom")
    else:
        conn.send(message)


@server.on_websocket_message
def ws_message(conn, message):
    if message == "pid":
        conn.send(str(os.getpid()))
    else:
        conn.send(f"ws:{message}" if isinstance(message, str) else b"ws:" + message)


@server.on_close
def closed(conn):
    path = os.environ.get("CLOSE_LOG")
    if path and hasattr(conn, "close_code") and conn.request is not None:
        with open(path, "a") as f:
            f.write(f"{conn.request.path} {conn.close_code}\n")
