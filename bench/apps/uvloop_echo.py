"""asyncio + uvloop newline or frame echo, forked into N processes sharing one socket.

Usage: python uvloop_echo.py PORT text|frame WORKERS
"""

import asyncio
import sys

from prefork import listen, run_workers


class TextEcho(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.pending = b""

    def data_received(self, data):
        if self.pending:
            data = self.pending + data
        lines = data.split(b"\n")
        self.pending = lines.pop()
        write = self.transport.write
        for line in lines:
            write(line + b"\n")


class FrameEcho(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = bytearray()

    def data_received(self, data):
        buffer = self.buffer
        buffer += data
        start, available = 0, len(buffer)
        while available - start >= 4:
            total = int.from_bytes(buffer[start : start + 4], "big")
            if total < 4:
                self.transport.close()
                return
            if available - start < total:
                break
            self.transport.write(bytes(buffer[start : start + total]))
            start += total
        del buffer[:start]


def serve(sock, protocol):
    import uvloop

    async def main():
        loop = asyncio.get_running_loop()
        await loop.create_server(protocol, sock=sock, backlog=4096)
        await asyncio.Event().wait()

    uvloop.run(main())


def main():
    port, kind, workers = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    sock = listen(port)
    run_workers(workers, lambda: serve(sock, TextEcho if kind == "text" else FrameEcho))


if __name__ == "__main__":
    main()
