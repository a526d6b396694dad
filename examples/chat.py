"""A two-listener chat: people on text:// and frame:// share rooms.

    gunicorn -k geworker.Worker -w 2 examples.chat:server

Connect with ``nc 127.0.0.1 2348`` and type lines. A timer announces the time
every minute, in one worker only (``worker.index == 0``). ``all_workers=True``
makes each broadcast reach the connections of every worker process.
"""

import time

from geworker import Server, timers

server = Server("text://127.0.0.1:2348", name="chat")
server.listen("frame://127.0.0.1:2349")


def say_to_all(line: str) -> None:
    server.broadcast(line, all_workers=True)


@server.on_worker_start
def start(worker) -> None:
    if worker.index == 0:
        timers.add(60, lambda: say_to_all(f"* it is {time.strftime('%H:%M')}"))


@server.on_connect
def hello(conn) -> None:
    conn.context["name"] = f"guest{conn.id}"
    server.broadcast(f"* {conn.context['name']} joined", exclude=[conn.id], all_workers=True)


@server.on_message
def say(conn, message) -> None:
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    if text.startswith("/nick "):
        conn.context["name"] = text[6:].strip() or conn.context["name"]
        conn.send(f"* you are {conn.context['name']}")
    else:
        say_to_all(f"<{conn.context['name']}> {text}")


@server.on_close
def bye(conn) -> None:
    say_to_all(f"* {conn.context['name']} left")
