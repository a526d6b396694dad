"""``websockets`` library echo on uvloop, forked into N processes sharing one socket.

Usage: python websockets_echo.py PORT WORKERS

The message ``broadcast`` is sent with ``websockets.broadcast`` to every
connection of the process that received it.
"""

import asyncio
import sys

from prefork import listen, run_workers


def serve(sock):
    import uvloop
    from websockets.asyncio.server import broadcast, serve

    async def main():
        async def handler(ws):
            async for message in ws:
                if message == "broadcast":
                    broadcast(server.connections, message)
                else:
                    await ws.send(message)

        server = await serve(handler, sock=sock, compression=None, ping_interval=None,
                             open_timeout=60, max_size=2**20, backlog=4096)
        await asyncio.Event().wait()

    uvloop.run(main())


def main():
    port, workers = int(sys.argv[1]), int(sys.argv[2])
    sock = listen(port)
    run_workers(workers, lambda: serve(sock))


if __name__ == "__main__":
    main()
