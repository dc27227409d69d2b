"""Telegram refusing the bot token (401) takes the channel down: its deliveries wait (no attempt
burned, nothing failed) under the alert `channel:telegram:down`, getMe probes the token every
ORDERCAST_CHANNEL_PROBE_INTERVAL, and when it is taken again they go and the alert is resolved."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ordercast.notify.telegram import TOKEN_REFUSED
from tests.bot.conftest import BotEnv, bot_env, stop
from tests.bot.test_multiprocess import status_of
from tests.conftest import new_order, wait_for

KEY = "channel:telegram:down"
PROBE_INTERVAL = 0.3


@pytest.fixture(scope="module")
async def bot(start_server: Callable[..., Any]) -> AsyncIterator[BotEnv]:
    async with bot_env(start_server, "webhook", channel_probe_interval=PROBE_INTERVAL) as env:
        yield env


async def alert(bot: BotEnv, *, resolved: bool) -> dict[str, Any] | None:
    """The newest alert keyed `channel:telegram:down` that is (not) resolved."""
    response = await bot.client.get("/api/v1/alerts", params={"resolved": str(resolved).lower()})
    assert response.status_code == 200, response.text
    return next((item for item in response.json()["items"] if item["key"] == KEY), None)


async def waiting(bot: BotEnv, order: dict[str, Any], count: int) -> bool:
    """Whether the order's `count` Telegram deliveries all wait, not one attempt used up."""
    rows = await bot.deliveries(order_id=order["id"], channel="telegram")
    return len(rows) == count and all((row["status"], row["attempts"]) == ("pending", 0) for row in rows)


async def refused_then_taken(bot: BotEnv, chat: int, order: dict[str, Any], steps: list[str]) -> None:
    """With the token refused: `order` goes through `steps`, whose messages wait under the alert; then
    the token is taken again and they arrive, in order, and the alert is resolved."""
    assert await alert(bot, resolved=False) is None
    before, calls = len(bot.fake.messages(chat)), len(bot.fake.refused)
    for status in steps:
        await bot.change(order, status)
    opened = await wait_for(lambda: alert(bot, resolved=False), message="the channel:telegram:down alert")
    assert opened["severity"] == "error"
    assert TOKEN_REFUSED in opened["message"]
    await wait_for(lambda: waiting(bot, order, len(steps)), message="the deliveries waiting, attempts unburned")
    rows = await bot.deliveries(order_id=order["id"], channel="telegram")
    assert rows[-1]["last_error"] == TOKEN_REFUSED
    # Probed with getMe, again and again (each refused), while no message is tried again.
    await wait_for(lambda: bot.fake.refused[calls:].count("getMe") >= 3, message="three probes")
    assert bot.fake.refused[calls:].count("sendMessage") <= 1
    assert len(bot.fake.messages(chat)) == before

    bot.fake.refusing = False
    messages = await bot.fake.wait_messages(chat, before + len(steps))
    assert [status_of(message.text)[1] for message in messages[before:]] == steps
    await wait_for(lambda: alert(bot, resolved=True), message="the alert resolved")
    assert await alert(bot, resolved=False) is None


async def test_a_token_refused_while_running_parks_the_messages_until_a_probe_passes(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    order = await new_order(bot.client, customer["id"])
    bot.fake.refusing = True
    await refused_then_taken(bot, chat, order, ["paid", "accepted"])

    async def sent_once() -> bool:
        # The fake has both messages; the second row may be a moment from being recorded as sent.
        rows = await bot.deliveries(order_id=order["id"], channel="telegram")
        return [(row["status"], row["attempts"]) for row in rows] == [("sent", 1)] * 2

    await wait_for(sent_once, message="both deliveries recorded as sent at their first attempt")


async def test_a_token_refused_at_start_parks_the_messages_and_the_bot_starts_when_it_is_taken(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    order = await new_order(bot.client, customer["id"])
    bot.fake.refusing = True
    await stop(bot.server)
    bot.server.start()
    await bot.server.wait_ready()
    await wait_for(lambda: "Telegram refused the bot token" in bot.server.output(), message="the refusal at start")
    commands = len(bot.fake.called("setMyCommands"))
    await refused_then_taken(bot, chat, order, ["paid"])
    # The bot started once the token was taken: it answers commands again.
    assert len(bot.fake.called("setMyCommands")) > commands
    assert "/orders" in (await bot.fake.reply_to(chat, "/help")).text
