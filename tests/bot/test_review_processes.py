"""The review conversation across processes: the star press is taken by one server, the comment by
another (on one PostgreSQL and Redis), so the order awaiting a comment must be in the database."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx

from tests.bot.conftest import AUTH, STEPS, BotEnv, bot_ready, bot_settings, stop
from tests.bot.fakebot import FakeBotAPI, running
from tests.conftest import ServerProcess, new_order, wait_for

WEBHOOK_PATH = "/api/v1/telegram/webhook"


def webhook_of(fake: FakeBotAPI) -> str | None:
    return fake.webhook["url"] if fake.webhook else None


async def settled(env: BotEnv, order: dict[str, Any]) -> bool:
    """Every status message of `order` is recorded as sent (so killing the server loses none)."""
    rows = await env.deliveries(order_id=order["id"])
    return len(rows) == len(STEPS) and all(row["status"] == "sent" for row in rows)


async def test_the_comment_is_taken_by_another_process_than_the_star_press(start_pg_server: Callable[..., Any]) -> None:
    async with running(FakeBotAPI()) as fake:
        first: ServerProcess = await start_pg_server(**bot_settings(fake, "webhook"))
        second: ServerProcess | None = None
        try:
            await bot_ready(fake, "webhook")
            assert webhook_of(fake) == f"{first.base_url}{WEBHOOK_PATH}"
            async with httpx.AsyncClient(base_url=first.base_url, headers=AUTH, timeout=10) as client:
                env = BotEnv(fake, first, client, "webhook")
                chat, customer = await env.link()
                order = await new_order(client, customer["id"])
                for status in STEPS:
                    await env.change(order, status)
                await wait_for(lambda: settled(env, order), message="the five status messages sent")

                before = len(fake.messages(chat))
                await fake.say(chat, "/review")
                [question] = (await fake.wait_messages(chat, before + 1))[before:]
                await fake.press(chat, question, f"review:{order['id']}:4")
                [prompt] = (await fake.wait_messages(chat, before + 2))[before + 1 :]
                assert "Would you like to add a comment" in prompt.text

            # Killed: nothing of the conversation can be handed over at shutdown.
            await stop(first, signal.SIGKILL)
            second = await start_pg_server(**bot_settings(fake, "webhook"))
            await wait_for(
                lambda: webhook_of(fake) == f"{second.base_url}{WEBHOOK_PATH}",
                message="the second server to set the webhook",
            )
            async with httpx.AsyncClient(base_url=second.base_url, headers=AUTH, timeout=10) as client:
                reviews = await client.get("/api/v1/reviews", params={"order_id": order["id"]})
                assert reviews.json()["items"] == []  # stars alone are no review yet

                thanks = await fake.reply_to(chat, "Lovely tea, <fast> delivery")
                assert "Thank you for your review" in thanks.text
                assert first.process is not None
                assert first.process.poll() is not None  # the first server is gone: the second took it

                reviews = await client.get("/api/v1/reviews", params={"order_id": order["id"]})
                assert [(r["stars"], r["comment"], r["customer_id"]) for r in reviews.json()["items"]] == [
                    (4, "Lovely tea, <fast> delivery", customer["id"])
                ]
                events = (await client.get(f"/api/v1/orders/{order['id']}/events")).json()["items"]
                [created] = [event for event in events if event["type"] == "review.created"]
                assert created["data"]["review"]["stars"] == 4
                assert created["data"]["review"]["comment"] == "Lovely tea, <fast> delivery"
        finally:
            for server in (first, second):
                if server is not None:
                    await stop(server)
        for server in (first, second):
            assert server is not None
            assert "Traceback" not in server.output(), server.output()[-5000:]
