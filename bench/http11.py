"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for load generation against 127.0.0.1.

httpx spends ~1.5 ms of client CPU per request here, enough to make the load generator the
bottleneck; this client sends one request at a time per connection and does no more parsing than a
benchmark needs (status, Content-Length or chunked body, Connection: close).
"""

from __future__ import annotations

import asyncio
import time

MAX_BODY = 16 * 1024 * 1024
MAX_CHUNKS = 100_000


class HttpError(Exception):
    """The response could not be read as HTTP/1.1."""


class Connection:
    """One keep-alive connection; not for concurrent use (one request in flight at a time)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int) -> None:
        self._reader = reader
        self._writer = writer
        self._host_header = f"Host: {host}:{port}\r\n".encode()
        self.closed = False
        self.last_used = time.monotonic()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, host, port)

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: bytes = b"",
    ) -> tuple[int, bytes]:
        """Send one request and read the whole response: `(status, body)`.

        `headers` is pre-encoded `Name: value\\r\\n` lines, so a hot loop builds them once. Callers bound
        it with `asyncio.timeout`; a cancelled request closes the connection.
        """
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._host_header + headers
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        self._writer.write(head + b"\r\n" + (body or b""))
        try:
            return await self._read_response()
        except BaseException:
            # A half-read response leaves the stream unusable for the next request.
            self.close()
            raise

    async def _read_response(self) -> tuple[int, bytes]:
        head = await self._reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.") or len(head) < 12:
            raise HttpError(f"not an HTTP/1.x response: {head[:40]!r}")
        status = int(head[9:12])
        length = -1
        chunked = False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection" and b"close" in value.lower():
                self.closed = True
        if chunked:
            body = await self._read_chunked()
        elif length >= 0:
            if length > MAX_BODY:
                raise HttpError(f"body of {length} bytes")
            body = await self._reader.readexactly(length)
        elif status in (204, 304) or 100 <= status < 200:
            body = b""
        else:
            body = await self._reader.read(MAX_BODY)
            self.closed = True
        if self.closed:
            self.close()
        self.last_used = time.monotonic()
        return status, body

    async def _read_chunked(self) -> bytes:
        parts: list[bytes] = []
        size_total = 0
        for _ in range(MAX_CHUNKS):
            size_line = await self._reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0], 16)
            if size == 0:
                await self._reader.readuntil(b"\r\n")  # no trailers expected: the final CRLF
                return b"".join(parts)
            size_total += size
            if size_total > MAX_BODY:
                raise HttpError("chunked body too large")
            parts.append(await self._reader.readexactly(size))
            await self._reader.readexactly(2)
        raise HttpError("too many chunks")

    def reusable(self, max_idle: float) -> bool:
        """Still open, and idle for less than `max_idle` s, well inside the server's keep-alive timeout:
        a request sent as the server closes an idle connection reads EOF, not a response."""
        return not self.closed and not self._reader.at_eof() and time.monotonic() - self.last_used < max_idle

    def close(self) -> None:
        self.closed = True
        self._writer.close()


async def get_status(host: str, port: int, path: str) -> int:
    """One GET on a fresh connection; the status code."""
    conn = await Connection.open(host, port)
    try:
        status, _ = await conn.request("GET", path, headers=b"Connection: close\r\n")
        return status
    finally:
        conn.close()
