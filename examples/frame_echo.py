"""Length-prefixed binary messages: gunicorn -k geworker.Worker examples.frame_echo:server

Each message is a 4-byte big-endian total length (header included), then the payload.
"""

from geworker import Server

server = Server("frame://127.0.0.1:2346", name="frame-echo", max_package_size=1024 * 1024)


@server.on_message
def echo(conn, payload: bytes) -> None:
    conn.send(payload)
