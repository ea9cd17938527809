"""A lean HTTP/1.1 load client for the proxy benchmarks, and a trivial server to measure it.

httpx's async client costs several hundred microseconds of CPU per request; on a 2-core
machine where the client and the proxy share the cores, that (not the proxy) capped the
exact-hit phase of ``proxy_load.py`` near 1,300-1,500 requests/s. This client writes
each request as one prepared byte string on a keep-alive connection and reads the reply
by its ``Content-Length``: a few tens of microseconds per request.

``TRIVIAL_SERVER`` is a fixed-answer HTTP server (asyncio protocol, uvloop when present)
run as a subprocess: the rate the client reaches against it, in the same run and at the
same concurrency, is the client's ceiling on this machine; a proxy figure near it would
measure the client, not the proxy (issue #25).
"""

from __future__ import annotations

import asyncio

__all__ = ["RawConn", "TRIVIAL_SERVER"]


class RawConn:
    """One keep-alive connection; ``request`` is not re-entrant (one worker each)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 head: bytes) -> None:
        self.reader, self.writer, self._head = reader, writer, head

    @classmethod
    async def open(cls, host: str, port: int, headers: dict[str, str]) -> RawConn:
        reader, writer = await asyncio.open_connection(host, port)
        head = f"Host: {host}:{port}\r\n".encode() + b"".join(
            f"{k}: {v}\r\n".encode() for k, v in headers.items())
        return cls(reader, writer, head)

    async def request(self, method: str, path: str, body: bytes = b""
                      ) -> tuple[int, dict[bytes, bytes], bytes]:
        """(status, lower-cased headers, body). Replies must carry Content-Length (the
        benchmark's JSON answers do; a chunked stream is not read here)."""
        self.writer.write(b"%s %s HTTP/1.1\r\n%scontent-length: %d\r\n\r\n%s" % (
            method.encode(), path.encode(), self._head, len(body), body))
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"content-length" not in headers:
            raise RuntimeError(f"{method} {path}: reply without Content-Length")
        n = int(headers[b"content-length"])
        return status, headers, (await self.reader.readexactly(n) if n else b"")

    async def aclose(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


TRIVIAL_SERVER = r'''
import asyncio, sys
BODY = b'{"ok":true}'
REPLY = (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-semcache-stage: exact\r\n"
         b"content-length: %d\r\n\r\n%s" % (len(BODY), BODY))

class P(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.buf = t, b""
    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            n = 0
            for line in self.buf[:end].split(b"\r\n")[1:]:
                if line[:15].lower() == b"content-length:":
                    n = int(line[15:])
            if len(self.buf) < end + 4 + n:
                return
            self.buf = self.buf[end + 4 + n:]
            self.t.write(REPLY)

async def main(port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(P, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()

try:
    import uvloop
    uvloop.run(main(int(sys.argv[1])))
except ImportError:
    asyncio.run(main(int(sys.argv[1])))
'''
