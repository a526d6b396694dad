"""A WebSocket echo server: gunicorn -k geworker.Worker -w 2 examples.websocket_echo:server

Text comes back as text, binary as binary. Set WS_ECHO_ADDRESS to listen
elsewhere (default 127.0.0.1:8081).
"""

import os

from geworker import Server

server = Server(f"websocket://{os.environ.get('WS_ECHO_ADDRESS', '127.0.0.1:8081')}",
                name="websocket-echo")


@server.on_message
def echo(conn, message):
    conn.send(message)
