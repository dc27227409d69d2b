"""Bot fixtures: a fake Bot API in the test process and real servers whose bot talks to it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from tests.bot.fakebot import TOKEN, FakeBotAPI, Sent, running
from tests.conftest import API_KEY, ServerProcess, new_customer, wait_for

AUTH = {"Authorization": f"Bearer {API_KEY}"}
STEPS = ["paid", "accepted", "packing", "dispatched", "delivered"]

# Chat ids unique across the session (and runs), so tests sharing a database never share a chat.
_chat_ids = itertools.count(random.randint(10**9, 2 * 10**9) * 100)

# Small intervals, so tests wait on conditions for milliseconds rather than seconds.
FAST = {
    "telegram_poll_timeout": 1,
    "telegram_poll_lock_ttl": 1.5,
    "telegram_rate_chat": 50,
    "telegram_rate_global": 500,
    "delivery_claim_interval": 0.2,
    "delivery_retry_base": 0.2,
    "delivery_retry_cap": 1,
    "delivery_lease": 5,
}


def new_chat_id() -> int:
    return next(_chat_ids)


def bot_settings(fake: FakeBotAPI, mode: str = "polling", **settings: Any) -> dict[str, Any]:
    return {
        "telegram_token": TOKEN,
        "telegram_mode": mode,
        "telegram_api_url": fake.url,
        **FAST,
        **settings,
    }


async def bot_ready(fake: FakeBotAPI, mode: str) -> None:
    """Wait until the bot has started: commands set, and the webhook set or polling begun."""
    await wait_for(lambda: fake.commands is not None, message="setMyCommands")
    if mode == "webhook":
        await wait_for(lambda: fake.webhook is not None, message="setWebhook")
    else:
        await wait_for(lambda: fake.called("getUpdates"), message="the first getUpdates")


@dataclass
class BotEnv:
    """A server with its bot on (talking to `fake`), and an API client for it."""

    fake: FakeBotAPI
    server: ServerProcess
    client: httpx.AsyncClient
    mode: str

    async def link(
        self, customer: dict[str, Any] | None = None, chat_id: int | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A customer (new unless given) linked to a chat (new unless given) through /start <token>."""
        customer = customer or await new_customer(self.client)
        chat_id = chat_id or new_chat_id()
        response = await self.client.post(f"/api/v1/customers/{customer['id']}/telegram-link")
        assert response.status_code == 201, response.text
        reply = await self.fake.reply_to(chat_id, f"/start {response.json()['token']}")
        assert "linked to your account" in reply.text, reply.text
        return chat_id, customer

    async def change(self, order: dict[str, Any], status: str, **fields: Any) -> dict[str, Any]:
        response = await self.client.post(f"/api/v1/orders/{order['id']}/status", json={"status": status, **fields})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    async def deliveries(self, **filters: Any) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/deliveries", params=filters)
        assert response.status_code == 200, response.text
        return response.json()["items"]  # type: ignore[no-any-return]


async def stop(server: ServerProcess, sig: int = signal.SIGTERM) -> None:
    # In a thread: a stopping server may still talk to the fake, which runs in this event loop.
    await asyncio.to_thread(server.stop, sig)


@contextlib.asynccontextmanager
async def bot_env(start_server: Callable[..., Any], mode: str = "polling", **settings: Any) -> AsyncIterator[BotEnv]:
    """A fake Bot API, and a server (on the session's stack) whose bot uses it in `mode`."""
    async with running(FakeBotAPI()) as fake, bot_servers(start_server, fake, mode, count=1, **settings) as [env]:
        yield env
    assert "Traceback" not in env.server.output(), env.server.output()[-5000:]


@contextlib.asynccontextmanager
async def bot_servers(
    start_server: Callable[..., Any], fake: FakeBotAPI, mode: str, count: int = 2, **settings: Any
) -> AsyncIterator[list[BotEnv]]:
    """`count` servers started by `start_server` (one database and Redis) whose bots use `fake` in
    `mode`, each with an API client; stopped on the way out, not at the end of the session, or their
    senders would claim later tests' deliveries."""
    servers: list[ServerProcess] = [await start_server(**bot_settings(fake, mode, **settings)) for _ in range(count)]
    try:
        await bot_ready(fake, mode)
        async with contextlib.AsyncExitStack() as clients:
            yield [BotEnv(fake, server, await clients.enter_async_context(_client(server)), mode) for server in servers]
    finally:
        for server in servers:
            await stop(server)


def _client(server: ServerProcess) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10)


def buttons_data(message: Sent) -> list[str]:
    return [button["callback_data"] for button in message.buttons()]


def has(pattern: str, text: str) -> bool:
    return re.search(pattern, text) is not None
