"""A TCP proxy: gunicorn -k geworker.Worker examples.proxy:server

Every connection to PROXY_ADDRESS (default 127.0.0.1:8000) gets its own
connection to the upstream (PROXY_UPSTREAM, default tcp://127.0.0.1:2346),
and bytes flow both ways with flow control: a side that reads slowly holds
the other back instead of filling the proxy's memory, and a close on either
side closes the other.
"""

import os

import geworker
from geworker import Server

server = Server(f"tcp://{os.environ.get('PROXY_ADDRESS', '127.0.0.1:8000')}", name="proxy")
UPSTREAM = os.environ.get("PROXY_UPSTREAM", "tcp://127.0.0.1:2346")


@server.on_connect
def open_upstream(conn):
    upstream = geworker.connect(UPSTREAM)
    conn.pipe(upstream)
    upstream.pipe(conn)
