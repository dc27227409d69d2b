"""Two server processes on one PostgreSQL and Redis: every status message sent exactly once and in
order per chat, and exactly one process polls (another takes over when it dies)."""

from __future__ import annotations

import asyncio
import re
import signal
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.bot.conftest import STEPS, BotEnv, bot_servers, new_chat_id, stop
from tests.bot.fakebot import FakeBotAPI, running
from tests.conftest import ServerProcess, new_order, wait_for

TITLES = {
    "Payment received": "paid",
    "Order confirmed": "accepted",
    "Being packed": "packing",
    "On its way": "dispatched",
    "Delivered": "delivered",
}


def status_of(text: str) -> tuple[str, str]:
    """(order number, status) of a status message."""
    title = re.search(r"<b>(.+?)</b>", text)
    number = re.search(r"#([0-9A-Z]{8})", text)
    assert title is not None, text
    assert number is not None, text
    return number[1], TITLES[title[1]]


@dataclass
class Pair:
    fake: FakeBotAPI
    servers: list[ServerProcess]
    clients: list[httpx.AsyncClient]

    def env(self, index: int) -> BotEnv:
        return BotEnv(self.fake, self.servers[index], self.clients[index], "polling")


@pytest.fixture(scope="module")
async def pair(start_pg_server: Callable[..., Any]) -> AsyncIterator[Pair]:
    """Two polling servers on one PostgreSQL and Redis, one fake Bot API."""
    async with running(FakeBotAPI()) as fake, bot_servers(start_pg_server, fake, "polling") as envs:
        yield Pair(fake, [env.server for env in envs], [env.client for env in envs])


async def sent_metric(client: httpx.AsyncClient) -> float:
    text = (await client.get("/metrics")).text
    found = re.search(r'^ordercast_deliveries_total\{channel="telegram",result="sent"\} (\S+)$', text, re.M)
    return float(found[1]) if found else 0.0


async def test_two_processes_send_100_status_changes_exactly_once_in_order_per_chat(pair: Pair) -> None:
    envs = [pair.env(0), pair.env(1)]
    chats = [await envs[n % 2].link() for n in range(10)]
    orders = [(chat, await new_order(envs[0].client, customer["id"])) for chat, customer in chats for _ in range(2)]
    before = [await sent_metric(client) for client in pair.clients]

    async def walk(index: int, order: dict[str, Any]) -> None:
        for step, status in enumerate(STEPS):
            await envs[(index + step) % 2].change(order, status)  # alternate processes

    await asyncio.gather(*(walk(index, order) for index, (_, order) in enumerate(orders)))
    assert len(orders) * len(STEPS) == 100

    def status_messages() -> int:
        return sum(len(pair.fake.messages(chat)) - 1 for chat, _ in chats)  # minus the greeting

    await wait_for(lambda: status_messages() >= 100, timeout=30, message="100 status messages")
    # Every delivery is settled: nothing more is coming.
    await wait_for(
        lambda: _all_sent(envs[0], [order for _, order in orders]), timeout=10, message="all deliveries recorded"
    )
    assert status_messages() == 100
    for chat, _ in chats:
        received = [status_of(message.text) for message in pair.fake.messages(chat)[1:]]
        mine = [order for order_chat, order in orders if order_chat == chat]
        assert Counter(received) == Counter((order["number"], status) for order in mine for status in STEPS)
        # In order per chat: each order's messages in the order of its changes. Between two orders of
        # one chat, changed at once by two processes, there is no order to keep: their transactions
        # commit in either order (a sequence number taken at insert doesn't say which committed first).
        for order in mine:
            assert [status for number, status in received if number == order["number"]] == STEPS
    after = [await sent_metric(client) for client in pair.clients]
    assert sum(after) - sum(before) == 100
    assert not pair.fake.conflicts


async def _all_sent(env: BotEnv, orders: list[dict[str, Any]]) -> bool:
    for order in orders:
        rows = await env.deliveries(order_id=order["id"])
        if len(rows) != len(STEPS) or any(row["status"] != "sent" or row["attempts"] != 1 for row in rows):
            return False
    return True


async def test_exactly_one_process_polls_and_another_takes_over_when_it_dies(pair: Pair) -> None:
    chats = [new_chat_id() for _ in range(5)]
    for chat in chats:
        await pair.fake.say(chat, "/help")
    for chat in chats:
        await pair.fake.wait_messages(chat, 1)
    marker = new_chat_id()
    await pair.fake.reply_to(marker, "/help")
    assert [len(pair.fake.messages(chat)) for chat in chats] == [1] * 5  # each answered once
    assert not pair.fake.conflicts  # never two getUpdates at once
    pollers = [server for server in pair.servers if "this process polls Telegram" in server.output()]
    assert len(pollers) == 1
    leader = pollers[0]
    follower = next(server for server in pair.servers if server is not leader)

    await stop(leader, signal.SIGKILL)
    late = new_chat_id()
    await pair.fake.say(late, "/help")
    await pair.fake.wait_messages(late, 1, timeout=15)
    assert "this process polls Telegram" in follower.output()
    assert len(pair.fake.messages(late)) == 1
