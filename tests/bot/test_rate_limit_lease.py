"""A 429 pause longer than the delivery lease: the messages waiting for it go back to the queue rather
than wait out the pause holding their lease, so no other process takes them over and sends them too.

Its own module: the servers of the other multi-process tests (same database) are stopped by then,
so none of them claims these deliveries for another fake Bot API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.bot.conftest import bot_servers
from tests.bot.fakebot import FakeBotAPI, flood, running
from tests.bot.test_multiprocess import status_of
from tests.conftest import new_order, wait_for

LEASE = 2  # seconds a sender holds a delivery; Telegram's pause below outlasts it
PAUSE = 3


async def test_a_429_pause_longer_than_the_lease_sends_each_message_once(start_pg_server: Callable[..., Any]) -> None:
    async with (
        running(FakeBotAPI()) as fake,
        # Both processes claim every 0.2 s: either takes over a lease that ran out at once.
        bot_servers(start_pg_server, fake, "webhook", delivery_lease=LEASE, telegram_send_timeout=1) as envs,
    ):
        first, *others = [await envs[n % 2].link() for n in range(7)]
        orders = {chat: await new_order(envs[0].client, customer["id"]) for chat, customer in [first, *others]}

        # The first message is refused with a pause (every process holds back every send for it) ...
        fake.fail_next(first[0], flood(PAUSE))
        await envs[0].change(orders[first[0]], "paid")
        await wait_for(lambda: not fake.failures[first[0]], message="the 429")
        # ... and the others are claimed during it, by both processes.
        for n, (chat, _) in enumerate(others):
            await envs[n % 2].change(orders[chat], "paid")

        for chat in orders:
            await fake.wait_messages(chat, 2, timeout=15)  # the greeting and the message

        async def all_sent() -> bool:
            for order in orders.values():
                rows = await envs[0].deliveries(order_id=order["id"], channel="telegram")
                if [row["status"] for row in rows] != ["sent"]:
                    return False
            return True

        await wait_for(all_sent, message="every delivery recorded as sent")
        for chat, order in orders.items():
            assert [status_of(message.text) for message in fake.messages(chat)[1:]] == [(order["number"], "paid")]
            [row] = await envs[0].deliveries(order_id=order["id"], channel="telegram")
            assert row["attempts"] == 1  # neither the 429 nor the wait for its end used one up
