"""geworker bench app: one listener from ``BENCH_URL``, behaviour from ``BENCH_KIND``.

* ``echo``: send every message back (text://, frame://, websocket://);
* ``hello``: answer every HTTP request with ``hello`` (http://);
* ``broadcast``: echo, except that the message ``broadcast`` is sent to every
  connection of every worker with ``server.broadcast(..., all_workers=True)``.

``BENCH_YIELD=N`` (an experiment): yield to the hub every N messages per
connection (every request for HTTP), to see what fairness between
connections changes.
"""

import os

import geworker

server = geworker.Server(os.environ["BENCH_URL"], name="bench")
KIND = os.environ.get("BENCH_KIND", "echo")

if KIND == "hello" and os.environ.get("BENCH_YIELD"):
    import gevent

    @server.on_message
    def hello_yielding(conn, request):
        conn.send("hello")
        gevent.sleep(0)

elif KIND == "hello":

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

elif os.environ.get("BENCH_YIELD"):
    import gevent

    EVERY = int(os.environ["BENCH_YIELD"])

    @server.on_message
    def echo_yielding(conn, message):
        conn.send(message)
        n = conn.context["n"] = conn.context.get("n", 0) + 1
        if n % EVERY == 0:
            gevent.sleep(0)

else:

    @server.on_message
    def echo(conn, message):
        conn.send(message)
