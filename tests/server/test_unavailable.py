"""A database that goes away answers 503 `unavailable` with Retry-After, never 500, and the server heals
when it comes back. The outage is real: the server reaches PostgreSQL through a TCP proxy the test
stops (dropping every connection and refusing new ones) and starts again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from tests.conftest import API_KEY, ServerProcess, Stack, free_port, migrate, new_customer, wait_for

API_AUTH = f"Bearer {API_KEY}"


class TcpProxy:
    """Forwards a local port to PostgreSQL's; `stop()` drops every connection and refuses new ones."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        await self._server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
        self._writers.discard(writer)


@contextlib.asynccontextmanager
async def proxied_server(postgres_stack: Stack, tmp_path: Path) -> AsyncIterator[tuple[ServerProcess, TcpProxy]]:
    migrate(postgres_stack)
    proxy = TcpProxy(5432)
    await proxy.start()
    url = postgres_stack.database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert url != postgres_stack.database_url
    stack = Stack("postgres", url, postgres_stack.redis_url, postgres_stack.env)
    server = ServerProcess(stack, tmp_path / "server.log", db_pool_size=2, db_connect_timeout=1)
    server.start()
    try:
        await server.wait_ready()
        yield server, proxy
    finally:
        server.stop()
        with contextlib.suppress(AssertionError):
            await proxy.stop()


async def test_requests_while_postgres_is_down_are_503_with_retry_after_and_heal(
    postgres_stack: Stack, tmp_path: Path
) -> None:
    async with (
        proxied_server(postgres_stack, tmp_path) as (server, proxy),
        httpx.AsyncClient(
            base_url=server.base_url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10
        ) as client,
    ):
        customer = await new_customer(client)
        await proxy.stop()
        answers = await asyncio.gather(
            client.get(f"/api/v1/customers/{customer['id']}"),
            client.get("/api/v1/orders"),
            client.post("/api/v1/customers", json={"external_id": "while-down", "name": "N"}),
        )
        assert [answer.status_code for answer in answers] == [503, 503, 503]
        for answer in answers:
            assert answer.json()["error"]["code"] == "unavailable"
            assert answer.headers["retry-after"] == "1"
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        await proxy.start()

        async def healed() -> bool:
            return (await client.get(f"/api/v1/customers/{customer['id']}")).status_code == 200

        await wait_for(healed, 20, "requests to succeed once PostgreSQL is back")
    # No request failed with an error: the background loops log their retries, requests never crashed.
    assert "Exception in ASGI application" not in server.output()
