"""Each channel has its own send slots: Telegram hanging never holds the pushes back (API.md: one bad
channel never slows another)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from tests.bot.conftest import bot_env
from tests.conftest import new_customer, new_order, wait_for
from tests.notify.fakepush import FakePushService, Push
from tests.notify.fakepush import running as running_push


@contextlib.asynccontextmanager
async def subscribed(client: httpx.AsyncClient, push: FakePushService) -> AsyncIterator[dict[str, Any]]:
    """A device of the API key's admin, subscribed to pushes (its PushSubscription JSON); unsubscribed
    after, or the tests after this one on the stack would push to it too."""
    key = (await client.get("/api/v1/push/vapid-public-key")).json()["key"]
    subscription = push.subscribe(key)
    response = await client.post("/api/v1/push/subscriptions", json=subscription)
    assert response.status_code == 201, response.text
    try:
        yield subscription
    finally:
        await client.request("DELETE", "/api/v1/push/subscriptions", json={"endpoint": subscription["endpoint"]})


def pushes_about(push: FakePushService, device: dict[str, Any], order: dict[str, Any]) -> list[Push]:
    return [one for one in push.received(device) if one.payload["url"].endswith(f"?order={order['id']}")]


async def test_pushes_go_while_every_telegram_send_hangs(start_server: Callable[..., Any]) -> None:
    # Two sends at a time: both Telegram's hang (unanswered for 30 s, its send timeout) on two chats.
    async with (
        running_push(FakePushService()) as push,
        bot_env(start_server, "webhook", delivery_concurrency=2, telegram_send_timeout=30) as bot,
        subscribed(bot.client, push) as device,
    ):
        chats = [await bot.link() for _ in range(2)]
        orders = [await new_order(bot.client, customer["id"]) for _, customer in chats]
        for (chat, _), order in zip(chats, orders, strict=True):
            bot.fake.hold(chat)
            await bot.change(order, "paid")
        await wait_for(lambda: set(bot.fake.holding) >= {chat for chat, _ in chats}, message="both sends hanging")
        try:
            # Each change is pushed to the admin's device at once, not after Telegram's timeout.
            orders.append(await new_order(bot.client, (await new_customer(bot.client))["id"]))
            await bot.change(orders[-1], "paid")
            await wait_for(lambda: len(pushes_about(push, device, orders[-1])) >= 2, timeout=5, message="the pushes")
        finally:
            for chat, _ in chats:
                bot.fake.release(chat)
        for chat, _ in chats:
            await bot.fake.wait_messages(chat, 2)
        await wait_for(
            lambda: all(len(pushes_about(push, device, order)) >= 2 for order in orders), message="every push"
        )
