"""A two-listener chat: people on text:// and frame:// share one room, across workers.

    gunicorn -k geworker.Worker -w 2 examples.chat:server

Connect with ``nc 127.0.0.1 2348`` and type lines; ``/nick NAME`` renames you,
``/who`` lists who is here (from every worker), ``/msg NAME TEXT`` whispers to
NAME wherever their connection lives. A timer announces the time every minute,
in one worker only (``worker.index == 0``). See docs/messaging.md.
"""

import time

from geworker import Server, messaging, timers

server = Server("text://127.0.0.1:2348", name="chat")
server.listen("frame://127.0.0.1:2349")
ROOM = "lobby"


@server.on_worker_start
def start(worker) -> None:
    if worker.index == 0:
        timers.add(60, lambda: messaging.send_to_group(ROOM, f"* it is {time.strftime('%H:%M')}"))


@server.on_connect
def hello(conn) -> None:
    name = f"guest-{conn.client_id[-4:]}{conn.client_id[:4]}"  # client ids differ across workers
    conn.session["name"] = name
    conn.bind_uid(name)
    conn.join(ROOM)
    messaging.send_to_group(ROOM, f"* {name} joined", exclude=[conn])


@server.on_message
def say(conn, message) -> None:
    text = message.decode(errors="replace") if isinstance(message, bytes) else message
    name = conn.session["name"]
    if text.startswith("/nick "):
        new = text[6:].strip()
        if not new or messaging.is_uid_online(new):
            conn.send(f"* {new or 'that'} is taken")
            return
        conn.session["name"] = new
        conn.bind_uid(new)
        conn.send(f"* you are {new}")
        messaging.send_to_group(ROOM, f"* {name} is now {new}", exclude=[conn])
    elif text == "/who":
        names = sorted(s["name"] for s in messaging.group_members(ROOM).values())
        conn.send("* here: " + ", ".join(names))
    elif text.startswith("/msg "):
        to, _, words = text[5:].partition(" ")
        if not messaging.is_uid_online(to):
            conn.send(f"* {to} is not here")
        else:
            messaging.send_to_uid(to, f"[{name} whispers] {words}")
    else:
        messaging.send_to_group(ROOM, f"<{name}> {text}")


@server.on_close
def bye(conn) -> None:
    messaging.send_to_group(ROOM, f"* {conn.session['name']} left")
