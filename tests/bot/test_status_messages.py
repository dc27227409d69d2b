"""Status messages through the delivery queue: one per change, in order, and what happens when
Telegram refuses (403, 400), throttles (429 with retry_after), fails (5xx) or doesn't answer."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.bot.conftest import BotEnv, bot_env
from tests.bot.fakebot import BAD_GATEWAY, BLOCKED, CHAT_NOT_FOUND, TOO_LONG, flood
from tests.conftest import Stack, new_customer, new_order, wait_for

HAPPY_PATH = [
    ("paid", "Payment received", "€9.90"),
    ("accepted", "Order confirmed", "24 hours"),
    ("packing", "Being packed", "tracking number as soon as it ships"),
    ("dispatched", "On its way", "<code>TRACK-42</code>"),
    ("delivered", "Delivered", "/review"),
]


@pytest.fixture(scope="module")
async def bot(start_server: Callable[..., Any]) -> AsyncIterator[BotEnv]:
    async with bot_env(start_server, "polling") as env:
        yield env


@pytest.fixture
def start_own_server(stack: Stack, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Start a server sharing nothing with the module's `bot` server, for tests that need other settings.

    On SQLite a second server gets a database of its own anyway. On PostgreSQL it would share the
    `bot` server's database and Redis prefix: that server would claim (and send through its own fake)
    the new server's deliveries, and hold the polling lock. So it goes on PostgreSQL and Redis of
    their own.
    """
    return request.getfixturevalue("start_pg_server" if stack.name == "postgres" else "start_server")  # type: ignore[no-any-return]


async def settled(bot: BotEnv, order: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """The order's deliveries, oldest first, once `count` of them are no longer pending or retrying."""

    async def done() -> list[dict[str, Any]] | None:
        rows = await bot.deliveries(order_id=order["id"])
        finished = [row for row in rows if row["status"] in ("sent", "failed", "skipped")]
        return list(reversed(rows)) if len(finished) >= count else None

    return await wait_for(done, message=f"{count} settled deliveries of {order['number']}")  # type: ignore[no-any-return]


async def test_each_status_change_sends_one_message_in_order(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    order = await new_order(bot.client, customer["id"])
    for status, _, _ in HAPPY_PATH:
        extra = {"tracking_number": "TRACK-42"} if status == "dispatched" else {}
        await bot.change(order, status, **extra)
    messages = (await bot.fake.wait_messages(chat, 1 + len(HAPPY_PATH)))[1:]
    for message, (_, title, detail) in zip(messages, HAPPY_PATH, strict=True):
        assert title in message.text
        assert detail in message.text
        assert f"#{order['number']}" in message.text
        assert message.parse_mode == "HTML"
    rows = await settled(bot, order, len(HAPPY_PATH))
    assert [row["status"] for row in rows] == ["sent"] * len(HAPPY_PATH)
    assert all(row["attempts"] == 1 and row["recipient"] == str(chat) for row in rows)
    assert all(row["id"].startswith("dlv_") and row["event_id"].startswith("evt_") for row in rows)
    # A patch (order.updated) is no status change: no message.
    await bot.client.patch(f"/api/v1/orders/{order['id']}", json={"note": "gift wrap"})
    await bot.change(order, "refunded")
    refund = (await bot.fake.wait_messages(chat, 2 + len(HAPPY_PATH)))[-1]
    assert "Refund issued" in refund.text
    assert len(bot.fake.messages(chat)) == 2 + len(HAPPY_PATH)


@pytest.mark.parametrize(
    ("path", "title", "detail"),
    [
        (["payment_failed"], "Payment failed", "try again"),
        (["expired"], "Order expired", "place a new order"),
        (["cancelled"], "Order cancelled", "No payment was taken"),
        (["paid", "cancelled"], "Order cancelled", "will be refunded"),
        (["paid", "refunded"], "Refund issued", "€9.90"),
    ],
)
async def test_side_exits_tell_the_customer_what_to_do(bot: BotEnv, path: list[str], title: str, detail: str) -> None:
    chat, customer = await bot.link()
    order = await new_order(bot.client, customer["id"])
    for status in path:
        await bot.change(order, status)
    last = (await bot.fake.wait_messages(chat, 1 + len(path)))[-1]
    assert title in last.text
    assert detail in last.text


async def test_an_unlinked_customer_gets_no_delivery(bot: BotEnv) -> None:
    customer = await new_customer(bot.client)
    order = await new_order(bot.client, customer["id"])
    await bot.change(order, "paid")
    assert await bot.deliveries(order_id=order["id"]) == []


async def test_a_blocked_chat_does_not_hold_up_the_others(bot: BotEnv) -> None:
    blocked_chat, blocked = await bot.link()
    chat, customer = await bot.link()
    bot.fake.broken[blocked_chat] = BLOCKED
    theirs = await new_order(bot.client, blocked["id"])
    mine = await new_order(bot.client, customer["id"])
    for status in ("paid", "accepted", "packing"):
        await bot.change(theirs, status)
        await bot.change(mine, status)
    await bot.fake.wait_messages(chat, 4)
    rows = await settled(bot, theirs, 3)
    assert [row["status"] for row in rows] == ["skipped"] * 3
    assert "blocked by the user" in rows[0]["last_error"]
    assert rows[0]["attempts"] == 1
    # Planned after Telegram said so: skipped at once, never attempted.
    await bot.change(theirs, "dispatched")
    latest = (await settled(bot, theirs, 4))[-1]
    assert (latest["status"], latest["last_error"], latest["attempts"]) == ("skipped", "inactive", 0)
    # They unblock the bot and write to it: the chat is reachable again.
    del bot.fake.broken[blocked_chat]
    assert "Status messages are on" in (await bot.fake.reply_to(blocked_chat, "/start")).text
    await bot.change(theirs, "delivered")
    assert "Delivered" in (await bot.fake.wait_messages(blocked_chat, 3))[-1].text


async def test_chat_not_found_marks_the_chat_inactive(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    # Telegram answers "chat not found" to every message for a chat that is gone.
    bot.fake.fail_next(chat, CHAT_NOT_FOUND, CHAT_NOT_FOUND)
    order = await new_order(bot.client, customer["id"])
    await bot.change(order, "paid")
    await bot.change(order, "accepted")
    first, second = await settled(bot, order, 2)
    assert (first["status"], first["last_error"], first["attempts"]) == ("skipped", "Chat not found", 1)
    # Skipped with it if it was queued already, planned as skipped if the chat was marked first; a
    # change committing while the chat is being marked may still try once, and meet the same answer.
    assert second["status"] == "skipped"
    assert second["attempts"] in (0, 1)
    assert second["last_error"] in ("Chat not found", "inactive")


async def test_a_429_is_waited_out_then_sent(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    bot.fake.fail_next(chat, flood(1))
    order = await new_order(bot.client, customer["id"])
    await bot.change(order, "paid")
    await wait_for(lambda: not bot.fake.failures[chat], message="the 429")
    throttled_at = time.monotonic()
    [message] = (await bot.fake.wait_messages(chat, 2))[1:]
    assert message.at - throttled_at >= 0.95
    [row] = await settled(bot, order, 1)
    # Waiting out a 429 gives back the attempt its claim counted: only failures use attempts up.
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert row["last_error"].startswith("Flood control exceeded")


async def test_a_429_holds_back_the_other_chats_too(bot: BotEnv) -> None:
    throttled_chat, throttled = await bot.link()
    other_chat, other = await bot.link()
    bot.fake.fail_next(throttled_chat, flood(1))
    await bot.change(await new_order(bot.client, throttled["id"]), "paid")
    await wait_for(lambda: not bot.fake.failures[throttled_chat], message="the 429")
    throttled_at = time.monotonic()
    # Telegram said to wait: a message to another chat waits too, rather than being refused as well.
    await bot.change(await new_order(bot.client, other["id"]), "paid")
    [message] = (await bot.fake.wait_messages(other_chat, 2))[1:]
    assert message.at - throttled_at >= 0.9
    await bot.fake.wait_messages(throttled_chat, 2)


async def test_5xx_and_timeouts_are_retried_with_backoff(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    bot.fake.fail_next(chat, BAD_GATEWAY, BAD_GATEWAY)
    order = await new_order(bot.client, customer["id"])
    await bot.change(order, "paid")
    await bot.change(order, "accepted")
    messages = (await bot.fake.wait_messages(chat, 3))[1:]
    assert ["Payment received" in messages[0].text, "Order confirmed" in messages[1].text] == [True, True]
    rows = await settled(bot, order, 2)
    assert [(row["status"], row["attempts"]) for row in rows] == [("sent", 3), ("sent", 1)]
    assert "Bad Gateway" in rows[0]["last_error"]


async def test_a_send_that_times_out_is_retried(start_own_server: Callable[..., Any]) -> None:
    async with bot_env(start_own_server, "polling", telegram_send_timeout=1) as bot:
        chat, customer = await bot.link()
        bot.fake.hold(chat)
        order = await new_order(bot.client, customer["id"])
        await bot.change(order, "paid")

        async def timed_out() -> dict[str, Any] | None:
            rows = await bot.deliveries(order_id=order["id"])
            return rows[0] if rows and rows[0]["status"] == "retrying" else None

        row = await wait_for(timed_out, message="the delivery to be retrying after the timeout")
        assert row["attempts"] == 1
        assert row["last_error"].startswith("TimedOut"), row["last_error"]
        assert chat in bot.fake.holding  # the send went out, and got no answer in time
        bot.fake.release(chat)
        [row] = await settled(bot, order, 1)
        assert (row["status"], row["attempts"]) == ("sent", 2)
        # Telegram may well have delivered a send whose answer never came (the fake did: it records
        # a held send when it arrives), and the retry sends it again. So at least once, and here,
        # after one retry, at most twice.
        copies = [message for message in bot.fake.messages(chat) if "Payment received" in message.text]
        assert 1 <= len(copies) <= 2


async def test_retries_stop_at_the_max_attempts_and_raise_an_alert(start_own_server: Callable[..., Any]) -> None:
    async with bot_env(start_own_server, "polling", delivery_max_attempts=2) as bot:
        chat, customer = await bot.link()
        bot.fake.broken[chat] = BAD_GATEWAY
        sends_before = len(bot.fake.called("sendMessage"))
        order = await new_order(bot.client, customer["id"])
        await bot.change(order, "paid")
        [row] = await settled(bot, order, 1)
        assert (row["status"], row["attempts"]) == ("failed", 2)
        assert "Bad Gateway" in row["last_error"]

        async def alert() -> dict[str, Any] | None:
            alerts = (await bot.client.get("/api/v1/alerts", params={"resolved": "false"})).json()["items"]
            # An open alert counts later occurrences; its message is the latest one's.
            key = "delivery:telegram:gave_up"
            return next((a for a in alerts if a["key"] == key and row["id"] in a["message"]), None)

        raised = await wait_for(alert, message="the gave_up alert for the delivery")
        assert raised["severity"] == "error"
        assert "Bad Gateway" in raised["message"]
        # Given up for good after the second send: no third went out.
        assert len(bot.fake.called("sendMessage")) - sends_before == 2
        assert bot.fake.messages(chat)[1:] == []


async def test_a_permanent_400_fails_that_message_and_the_queue_moves_on(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    bot.fake.fail_next(chat, TOO_LONG)
    order = await new_order(bot.client, customer["id"])
    await bot.change(order, "paid")
    await bot.change(order, "accepted")
    [message] = (await bot.fake.wait_messages(chat, 2))[1:]
    assert "Order confirmed" in message.text
    rows = await settled(bot, order, 2)
    assert [(row["status"], row["attempts"]) for row in rows] == [("failed", 1), ("sent", 1)]
    assert rows[0]["last_error"] == "Message is too long"


async def test_deliveries_are_listed_filtered_and_paginated(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    order = await new_order(bot.client, customer["id"])
    for status in ("paid", "accepted", "packing"):
        await bot.change(order, status)
    await bot.fake.wait_messages(chat, 4)
    rows = await settled(bot, order, 3)
    seen = []
    cursor = None
    while True:
        params = {"order_id": order["id"], "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await bot.client.get("/api/v1/deliveries", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [row["id"] for row in seen] == [row["id"] for row in reversed(rows)]  # newest first
    assert await bot.deliveries(order_id=order["id"], status="failed") == []
    assert len(await bot.deliveries(order_id=order["id"], channel="telegram", status="sent")) == 3
    assert await bot.deliveries(order_id=order["id"], channel="push") == []
    for params in ({"status": "lost"}, {"limit": 0}, {"cursor": "nope"}):
        response = await bot.client.get("/api/v1/deliveries", params=params)
        assert response.status_code == 400, params
    first = (await bot.client.get("/api/v1/deliveries", params={"limit": 1})).json()["next_cursor"]
    response = await bot.client.get("/api/v1/deliveries", params={"cursor": first, "channel": "telegram"})
    assert response.status_code == 400  # a cursor is bound to its filters

    stats = (await bot.client.get("/api/v1/deliveries/stats")).json()
    telegram = stats["telegram"]
    assert telegram["sent"] >= 3
    assert set(telegram) == {"sent", "failed", "pending", "retried", "p50_seconds", "p95_seconds"}
    assert 0 <= telegram["p50_seconds"] <= telegram["p95_seconds"] < 60
    metrics = (await bot.client.get("/metrics")).text
    assert 'ordercast_deliveries_total{channel="telegram",result="sent"}' in metrics
    assert 'ordercast_delivery_latency_seconds_count{channel="telegram"}' in metrics
