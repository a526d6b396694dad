"""A minimal HTTP server: gunicorn -k geworker.Worker -w 2 examples.http_hello:server

    curl http://127.0.0.1:8080/          -> hello
    curl http://127.0.0.1:8080/json      -> {"hello":"world"}
"""

import os

from geworker import Server

server = Server(f"http://{os.environ.get('HTTP_ADDRESS', '127.0.0.1:8080')}", name="http-hello")


@server.on_message
def hello(conn, request):
    if request.path == "/json":
        conn.send({"hello": "world"})
    else:
        conn.send(b"hello")
