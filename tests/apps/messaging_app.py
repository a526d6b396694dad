"""The app the messaging tests run: commands over text lines and WebSocket messages.

``HTTP_PORT`` serves a page (keep-alive HTTP) and WebSocket upgrades on one
port; ``TEXT_PORT`` takes the same commands as lines.
"""

import json
import os

from geworker import Server, messaging
from geworker.http import Request, Response

server = Server(f"http://127.0.0.1:{os.environ['HTTP_PORT']}",
                f"text://127.0.0.1:{os.environ['TEXT_PORT']}", name="chat")


def command(conn, line):
    word, _, rest = line.partition(" ")
    try:
        reply = run(conn, word, rest)
    except Exception as exc:  # the error goes back to the test
        reply = f"error {type(exc).__name__}: {exc}"
    if reply is not None:
        conn.send(reply)


def run(conn, word, rest):
    first, _, tail = rest.partition(" ")
    if word == "pid":
        return str(os.getpid())
    if word == "id":
        return conn.client_id
    if word == "uid":
        conn.bind_uid(first)
        return "ok"
    if word == "join":
        conn.join(first)
        return "ok"
    if word == "joinmany":
        for i in range(int(first)):
            conn.join(f"flood{i}")
        return "ok"
    if word == "leave":
        conn.leave(first)
        return "ok"
    if word == "session":
        conn.session[first] = json.loads(tail)
        return "ok"
    if word == "to_client":
        return f"ok {messaging.send_to_client(first, tail)}"
    if word == "to_uid":
        return f"ok {messaging.send_to_uid(first, tail)}"
    if word == "to_group":
        return f"ok {messaging.send_to_group(first, tail, exclude=[conn])}"
    if word == "to_group_except":  # to_group_except GROUP CLIENT_ID TEXT
        other, _, text = tail.partition(" ")
        return f"ok {messaging.send_to_group(first, text, exclude=[other])}"
    if word == "to_all":
        return f"ok {messaging.send_to_all(rest, exclude=[conn])}"
    if word == "big":
        return f"ok {messaging.send_to_uid(first, 'x' * int(tail))}"
    if word == "bcast":
        server.broadcast(rest, all_workers=True)
        return None
    if word == "close":
        return f"ok {messaging.close_client(first, tail or None)}"
    if word == "ungroup":
        messaging.ungroup(first)
        return "ok"
    if word == "bind_other":
        return f"ok {messaging.bind_uid(first, tail)}"
    if word == "join_other":
        return f"ok {messaging.join_group(first, tail)}"
    if word == "describe":
        return "d " + json.dumps(messaging.current().describe())
    if word == "q":  # q NAME [ARG]
        query = getattr(messaging, first)
        return "q " + json.dumps(query(tail) if tail else query())
    return f"unknown {word}"


@server.on_message
def on_message(conn, message):
    if isinstance(message, Request):
        if message.path == "/broadcast":
            server.broadcast("from http", all_workers=True)
            conn.send("broadcast sent")
        else:
            conn.send(Response("<html><body>chat</body></html>",
                               headers={"Content-Type": "text/html"}))
        return
    command(conn, message)


@server.on_websocket_message
def on_websocket_message(conn, message):
    command(conn, message)
