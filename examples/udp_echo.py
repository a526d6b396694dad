"""UDP echo: gunicorn -k geworker.Worker examples.udp_echo:server

The business code is the same as for TCP: only the URL scheme changes.
Try it with: echo hello | nc -u -w1 127.0.0.1 2347
"""

from geworker import Server

server = Server("udp://127.0.0.1:2347", name="udp-echo")


@server.on_message
def echo(conn, datagram: bytes) -> None:
    conn.send(datagram)
