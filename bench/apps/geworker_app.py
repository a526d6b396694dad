"""geworker bench app: one listener from ``BENCH_URL``, behaviour from ``BENCH_KIND``.

* ``echo``: send every message back (text://, frame://, websocket://);
* ``hello``: answer every HTTP request with ``hello`` (http://);
* ``broadcast``: echo, except that the message ``broadcast`` is sent to every
  connection of every worker with ``server.broadcast(..., all_workers=True)``.
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

else:

    @server.on_message
    def echo(conn, message):
        conn.send(message)
