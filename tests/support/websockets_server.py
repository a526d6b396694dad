"""A ``websockets`` library server for the WebSocket client tests, run as a subprocess.

``python websockets_server.py LOG [CERT KEY]`` listens on a free loopback port
(TLS with CERT and KEY), prints ``PORT <n>`` and serves until killed. Each
connection echoes messages (text as text, binary as binary), except these
text commands:

* ``fragments`` -> one text message sent in three fragments;
* ``ping`` -> pings the client and answers ``pong received`` when its pong came;
* ``close CODE REASON`` -> closes with that code and reason;
* ``info`` -> ``<path>?<query> <X-Test header> <subprotocol> <extensions>``.

When a connection ends, ``<close code> <close reason>`` of the client's close
frame is appended to LOG.
"""

from __future__ import annotations

import ssl
import sys

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import serve


def handler(ws) -> None:
    try:
        for message in ws:
            if message == "fragments":
                ws.send(iter(["frag", "men", "ted"]))
            elif message == "ping":
                if ws.ping(b"are you there").wait(5):
                    ws.send("pong received")
            elif isinstance(message, str) and message.startswith("close "):
                _, code, reason = message.split(" ", 2)
                ws.close(int(code), reason)
            elif message == "info":
                request = ws.request
                ws.send(" ".join([request.path, request.headers.get("X-Test", "-"),
                                  ws.subprotocol or "-",
                                  ws.response.headers.get("Sec-WebSocket-Extensions", "-")]))
            else:
                ws.send(message)
    except ConnectionClosed:
        pass
    finally:
        rcvd = ws.protocol.close_rcvd
        with open(sys.argv[1], "a") as log:
            log.write(f"{rcvd.code if rcvd else None} {rcvd.reason if rcvd else ''}\n")


def main() -> None:
    context = None
    if len(sys.argv) > 3:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
    with serve(handler, "127.0.0.1", 0, ssl=context, subprotocols=["chat", "other"],
               max_size=2 * 1024 * 1024, ping_interval=None) as server:
        print(f"PORT {server.socket.getsockname()[1]}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
