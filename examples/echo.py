"""A newline-delimited echo server: gunicorn -k geworker.Worker -w 2 examples.echo:server"""

import os

from geworker import Server

server = Server(f"text://{os.environ.get('ECHO_ADDRESS', '127.0.0.1:2345')}", name="echo")


@server.on_message
def echo(conn, message):
    conn.send(message)
