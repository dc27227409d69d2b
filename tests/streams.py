"""Stream clients for tests: an SSE reader over httpx and a WebSocket reader, both against real servers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect


@dataclass
class Message:
    id: str | None
    type: str
    data: Any


@dataclass
class SSEReader:
    """Collects SSE messages from a live response in a background task."""

    response: httpx.Response
    messages: list[Message] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: int | None = None
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        event: dict[str, str] = {}
        data: list[str] = []
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if data:
                        self.messages.append(
                            Message(event.get("id"), event.get("event", "message"), orjson.loads("\n".join(data)))
                        )
                    event, data = {}, []
                elif line.startswith(":"):
                    self.comments.append(line[1:].strip())
                else:
                    name, _, value = line.partition(":")
                    value = value.removeprefix(" ")
                    if name == "data":
                        data.append(value)
                    elif name == "retry":
                        self.retry = int(value)
                    else:
                        event[name] = value
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.StreamClosed):
            pass
        finally:
            self.ended.set()

    def of_type(self, prefix: str) -> list[Message]:
        return [m for m in self.messages if m.type.startswith(prefix)]


@contextlib.asynccontextmanager
async def sse(
    client: httpx.AsyncClient,
    *,
    last_event_id: str | None = None,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[SSEReader]:
    request_headers = dict(headers or {})
    if last_event_id is not None:
        request_headers["Last-Event-ID"] = last_event_id
    timeout = httpx.Timeout(10, read=None)
    async with client.stream(
        "GET", "/api/v1/events", params=params, headers=request_headers, timeout=timeout
    ) as response:
        reader = SSEReader(response)
        if response.status_code == 200:
            reader.task = asyncio.create_task(reader._read())
        try:
            yield reader
        finally:
            if reader.task is not None:
                reader.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader.task


@dataclass
class WSReader:
    connection: ClientConnection
    messages: list[Message] = field(default_factory=list)
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int | None = None
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        try:
            async for frame in self.connection:
                payload = orjson.loads(frame)
                self.messages.append(Message(payload["id"], payload["type"], payload["data"]))
        except Exception:
            pass
        finally:
            self.close_code = self.connection.close_code
            self.closed.set()

    def of_type(self, prefix: str) -> list[Message]:
        return [m for m in self.messages if m.type.startswith(prefix)]


@contextlib.asynccontextmanager
async def ws(base_url: str, *, query: str = "", headers: dict[str, str] | None = None) -> AsyncIterator[WSReader]:
    url = base_url.replace("http://", "ws://") + "/api/v1/ws" + (f"?{query}" if query else "")
    async with connect(url, additional_headers=headers or {}, open_timeout=10) as connection:
        reader = WSReader(connection)
        reader.task = asyncio.create_task(reader._read())
        try:
            yield reader
        finally:
            reader.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader.task
