"""geworker bench app: one listener from ``BENCH_URL``, behaviour from ``BENCH_KIND``.

* ``echo``: send every message back (text://, frame://, websocket://);
* ``hello``: answer every HTTP request with ``hello`` (http://);
* ``broadcast``: echo, except that the message ``broadcast`` is sent to every
  connection of every worker with ``server.broadcast(..., all_workers=True)``;
* ``group``: the same, but every connection joins one group and the message
  goes out with ``messaging.send_to_group``;
* ``relay``: ``id`` answers ``<pid> <client id>``, ``to <client id> <text>``
  sends ``<text>`` to that connection with ``messaging.send_to_client`` (on
  whichever worker it is), anything else is echoed.
"""

import os

import geworker

server = geworker.Server(os.environ["BENCH_URL"], name="bench")
KIND = os.environ.get("BENCH_KIND", "echo")

if KIND == "hello":

    @server.on_message
    def hello(conn, request):
        conn.send("hello")

elif KIND == "broadcast":

    @server.on_message
    def echo_or_broadcast(conn, message):
        if message in ("broadcast", b"broadcast"):
            server.broadcast(message, all_workers=True)
        else:
            conn.send(message)

elif KIND == "group":

    @server.on_connect
    def join(conn):
        conn.join("everyone")

    @server.on_message
    def echo_or_send_to_group(conn, message):
        if message in ("broadcast", b"broadcast"):
            geworker.messaging.send_to_group("everyone", message)
        else:
            conn.send(message)

elif KIND == "relay":

    @server.on_message
    def relay(conn, message):
        if message.startswith("to "):
            _, client_id, text = message.split(" ", 2)
            geworker.messaging.send_to_client(client_id, text)
        elif message == "id":
            conn.send(f"{os.getpid()} {conn.client_id}")
        else:
            conn.send(message)

else:

    @server.on_message
    def echo(conn, message):
        conn.send(message)
