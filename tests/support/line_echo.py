"""A light line echo server for reconnect cycles: ``python line_echo.py PORT``.

Binds 127.0.0.1:PORT (SO_REUSEADDR), prints ``ready <time.time()>`` once it
listens, echoes every connection's bytes back, and dies with the process
(SIGTERM): its connections are closed by the kernel.
"""

from __future__ import annotations

import socketserver
import sys
import time


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while True:
            data = self.request.recv(65536)
            if not data:
                return
            self.request.sendall(data)


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


with Server(("127.0.0.1", int(sys.argv[1])), Echo) as server:
    print(f"ready {time.time():.4f}", flush=True)
    server.serve_forever()
