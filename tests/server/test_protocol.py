"""Connection limits of `ordercast serve`: a request trickled byte by byte is cut at the read deadline,
and a WebSocket frame above the limit is refused."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import API_KEY, ServerProcess


@pytest.fixture(scope="module")
async def strict_server(start_server: Callable[..., Any]) -> ServerProcess:
    return await start_server(request_read_timeout=1)  # type: ignore[no-any-return]


async def test_a_request_that_trickles_in_is_cut_at_the_read_deadline(strict_server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.port)
    writer.write(b"POST /api/v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    # The server closes the connection by itself (EOF), well before the test's own limit.
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert b"201" not in answer


async def test_a_silent_connection_is_cut_at_the_read_deadline(strict_server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.port)
    assert await asyncio.wait_for(reader.read(), timeout=10) == b""
    writer.close()


async def test_a_request_sent_whole_is_unaffected(strict_server: ServerProcess) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", strict_server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), timeout=10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")


async def test_a_websocket_frame_above_64_kib_is_refused(server: ServerProcess) -> None:
    url = f"ws://127.0.0.1:{server.port}/api/v1/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {API_KEY}"}, max_size=None) as socket:
        await socket.send("x" * 1024)  # a small frame is fine (and ignored)
        await socket.send("x" * 70_000)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(until_closed(socket), timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009  # message too big


async def until_closed(socket: ClientConnection) -> None:
    """Read until the server closes: the shared server's admin channel may carry events first."""
    while True:
        await socket.recv()
