"""The bot's commands end to end, in polling and webhook mode: a real PTB Application in the server
talking HTTP to the fake Bot API, users typing and pressing buttons there."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ordercast.bot import texts
from ordercast.events import parse_time
from tests.bot.conftest import BotEnv, bot_env, buttons_data, new_chat_id
from tests.bot.fakebot import flood
from tests.conftest import new_customer, new_order

LINK_TTL = 3  # seconds: short, so the expiry test doesn't wait long


@pytest.fixture(scope="module", params=["polling", "webhook"])
async def bot(request: pytest.FixtureRequest, start_server: Callable[..., Any]) -> AsyncIterator[BotEnv]:
    async with bot_env(start_server, request.param, telegram_link_ttl=LINK_TTL) as env:
        yield env


async def delivered_order(bot: BotEnv, customer: dict[str, Any], chat: int, **order: Any) -> dict[str, Any]:
    """An order taken to `delivered`, after its five status messages reached `chat`."""
    created = await new_order(bot.client, customer["id"], **order)
    before = len(bot.fake.messages(chat))
    for status in ("paid", "accepted", "packing", "dispatched", "delivered"):
        await bot.change(created, status)
    await bot.fake.wait_messages(chat, before + 5)
    return created


async def test_start_sets_the_commands_and_the_webhook_or_polls(bot: BotEnv) -> None:
    assert bot.fake.commands is not None
    assert [c["command"] for c in bot.fake.commands] == ["orders", "order", "review", "stop", "start", "help"]
    assert all(c["description"] for c in bot.fake.commands)
    if bot.mode == "webhook":
        assert bot.fake.webhook is not None
        assert bot.fake.webhook["url"] == f"{bot.server.base_url}/api/v1/telegram/webhook"
        assert re.fullmatch(r"[A-Za-z0-9_-]{32,256}", bot.fake.webhook["secret_token"])
        assert set(bot.fake.webhook["allowed_updates"]) == {"message", "callback_query"}
        assert not bot.fake.called("getUpdates")
    else:
        assert bot.fake.webhook is None
        assert bot.fake.called("getUpdates")


async def test_the_webhook_takes_updates_only_with_the_secret(bot: BotEnv) -> None:
    chat = new_chat_id()
    update = {
        "update_id": 10**9 + chat % 10**6,
        "message": {
            "message_id": 1,
            "date": int(datetime.now(UTC).timestamp()),
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "Eve"},
            "text": "/help",
            "entities": [{"type": "bot_command", "offset": 0, "length": 5}],
        },
    }
    path = "/api/v1/telegram/webhook"
    async with httpx.AsyncClient(base_url=bot.server.base_url, timeout=10) as anonymous:
        if bot.mode != "webhook":
            assert (await anonymous.post(path, json=update)).status_code == 404
            return
        assert bot.fake.webhook is not None
        secret = bot.fake.webhook["secret_token"]
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong"}, {"X-Telegram-Bot-Api-Secret-Token": ""}):
            response = await anonymous.post(path, json=update, headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthenticated"
        assert not bot.fake.messages(chat)
        good = {"X-Telegram-Bot-Api-Secret-Token": secret}
        assert (await anonymous.post(path, content=b"[1]", headers=good)).status_code == 400
        assert (await anonymous.post(path, json={"update_id": "1"}, headers=good)).status_code == 422
        response = await anonymous.post(path, json=update, headers=good)
        assert response.status_code == 200
    [reply] = await bot.fake.wait_messages(chat, 1)
    assert "isn't linked" in reply.text


@pytest.mark.parametrize("text", ["/help", "/orders", "/order A1B2C3D4", "/review", "/stop", "/start", "hello"])
async def test_an_unlinked_chat_is_told_how_to_link(bot: BotEnv, text: str) -> None:
    reply = await bot.fake.reply_to(new_chat_id(), text)
    assert "isn't linked to a customer account" in reply.text
    assert reply.parse_mode == "HTML"


async def test_help_in_an_unlinked_chat_lists_every_command_then_how_to_link(bot: BotEnv) -> None:
    reply = await bot.fake.reply_to(new_chat_id(), "/help")
    for name, _ in texts.COMMANDS:
        assert f"/{name}" in reply.text, reply.text
    assert reply.text.index("/help") < reply.text.index("isn't linked to a customer account")


async def test_an_unlinked_chat_pressing_a_button_is_told_how_to_link_in_the_answer(bot: BotEnv) -> None:
    chat = new_chat_id()
    question = await bot.fake.reply_to(chat, "/help")
    await bot.fake.press(chat, question, "review:ord_0123456789abcdefghjkmnpqrs:5")
    await wait_answer(bot, "isn't linked to a customer account")
    answer = next(a["text"] for a in bot.fake.callback_answers if "isn't linked" in a.get("text", ""))
    assert len(answer) <= 200  # Telegram's limit for a callback answer
    assert bot.fake.messages(chat) == [question]  # answered, not replied to


async def test_an_unlinked_chat_has_nothing_to_skip(bot: BotEnv) -> None:
    assert "nothing to skip" in (await bot.fake.reply_to(new_chat_id(), "/skip")).text


async def test_a_link_token_links_the_chat_once(bot: BotEnv) -> None:
    customer = await new_customer(bot.client, name="Ada Lovelace")
    response = await bot.client.post(f"/api/v1/customers/{customer['id']}/telegram-link")
    assert response.status_code == 201
    link = response.json()
    token = link["token"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{16,64}", token)
    assert customer["id"].split("_")[1] not in token
    assert link["url"] == f"https://t.me/ordercast_test_bot?start={token}"
    expires = parse_time(link["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(seconds=LINK_TTL))) < timedelta(seconds=2)

    chat = new_chat_id()
    reply = await bot.fake.reply_to(chat, f"/start {token}")
    assert reply.text.startswith("Hello Ada Lovelace!")
    assert (await bot.client.get(f"/api/v1/customers/{customer['id']}")).json()["telegram_linked"] is True
    used = await bot.fake.reply_to(new_chat_id(), f"/start {token}")
    assert "has been used already" in used.text
    unknown = await bot.fake.reply_to(new_chat_id(), "/start not-a-token-we-made")
    assert "isn't valid" in unknown.text
    assert "isn't valid" in (await bot.fake.reply_to(new_chat_id(), "/start <b>")).text


async def test_an_expired_link_is_refused(bot: BotEnv) -> None:
    customer = await new_customer(bot.client)
    link = (await bot.client.post(f"/api/v1/customers/{customer['id']}/telegram-link")).json()
    expires = parse_time(link["expires_at"])
    await wait_until(expires)
    reply = await bot.fake.reply_to(new_chat_id(), f"/start {link['token']}")
    assert "has expired" in reply.text
    assert (await bot.client.get(f"/api/v1/customers/{customer['id']}")).json()["telegram_linked"] is False


async def wait_until(moment: datetime) -> None:
    from tests.conftest import wait_for

    await wait_for(lambda: datetime.now(UTC) > moment, timeout=LINK_TTL + 5, message="the link to expire")


async def test_relinking_moves_the_link(bot: BotEnv) -> None:
    first_chat, ada = await bot.link()
    second_chat, _ = await bot.link(customer=ada)  # Ada links from another chat
    _, grace = await bot.link(chat_id=first_chat)  # and Grace from Ada's old chat
    order = await new_order(bot.client, ada["id"])
    await bot.change(order, "paid")
    [moved] = (await bot.fake.wait_messages(second_chat, 2))[1:]
    assert "Payment received" in moved.text
    assert "Payment received" not in " ".join(bot.fake.texts(first_chat))
    assert (await bot.client.get(f"/api/v1/customers/{ada['id']}")).json()["telegram_linked"] is True
    assert (await bot.client.get(f"/api/v1/customers/{grace['id']}")).json()["telegram_linked"] is True
    # Grace's chat was Ada's: Ada's orders are no longer listed there.
    assert f"#{order['number']}" not in (await bot.fake.reply_to(first_chat, "/orders")).text


async def test_orders_and_order_show_only_the_customers_own_orders(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    assert "no orders yet" in (await bot.fake.reply_to(chat, "/orders")).text
    first = await new_order(bot.client, customer["id"])
    second = await new_order(
        bot.client,
        customer["id"],
        currency="JPY",
        items=[{"sku": "M", "name": "Matcha", "quantity": 3, "unit_price": "1200"}],
    )
    await bot.change(first, "paid")
    await bot.fake.wait_messages(chat, 3)  # the greeting, "no orders yet", "payment received"
    listing = (await bot.fake.reply_to(chat, "/orders")).text
    assert listing.index(f"#{second['number']}") < listing.index(f"#{first['number']}")  # newest first
    assert "Paid" in listing
    assert "Awaiting payment" in listing
    assert "€9.90" in listing
    assert "¥3,600" in listing

    details = (await bot.fake.reply_to(chat, f"/order {second['number'].lower()}")).text
    assert f"<b>#{second['number']}</b>" in details
    assert "3 × Matcha: ¥3,600" in details
    assert "Total: <b>¥3,600</b>" in details
    assert f"#{first['number']}" in (await bot.fake.reply_to(chat, f"/order #{first['number']}")).text

    stranger = await new_order(bot.client, (await new_customer(bot.client))["id"])
    refused = (await bot.fake.reply_to(chat, f"/order {stranger['number']}")).text
    assert "couldn't find order" in refused
    assert "Tea" not in refused
    assert "couldn't find order" in (await bot.fake.reply_to(chat, "/order nope")).text
    assert "followed by the order number" in (await bot.fake.reply_to(chat, "/order")).text


async def test_every_value_is_escaped_in_html(bot: BotEnv) -> None:
    customer = await new_customer(bot.client, name="<Ada> & <b>Co</b>")
    chat, _ = await bot.link(customer=customer)
    [greeting] = bot.fake.messages(chat)
    assert greeting.text.startswith("Hello &lt;Ada&gt; &amp; &lt;b&gt;Co&lt;/b&gt;!")
    items = [{"sku": "X", "name": "<script>alert(1)</script>", "quantity": 1, "unit_price": "1.00"}]
    order = await new_order(bot.client, customer["id"], items=items)
    await bot.change(order, "paid")
    await bot.change(order, "accepted")
    await bot.change(order, "packing")
    await bot.change(order, "dispatched", tracking_number="<i>1Z</i>&")
    messages = await bot.fake.wait_messages(chat, 5)
    assert "<code>&lt;i&gt;1Z&lt;/i&gt;&amp;</code>" in messages[4].text
    details = (await bot.fake.reply_to(chat, f"/order {order['number']}")).text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in details
    assert "<script>" not in details


async def test_stop_and_start_turn_status_messages_off_and_on(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    assert "no more status messages" in (await bot.fake.reply_to(chat, "/stop")).text
    order = await new_order(bot.client, customer["id"])
    await bot.change(order, "paid")
    [skipped] = await bot.deliveries(order_id=order["id"])
    assert (skipped["status"], skipped["last_error"], skipped["channel"]) == ("skipped", "stopped", "telegram")
    assert skipped["recipient"] == str(chat)
    assert "Status messages are on" in (await bot.fake.reply_to(chat, "/start")).text
    await bot.change(order, "accepted")
    messages = await bot.fake.wait_messages(chat, 4)
    assert "Order confirmed" in messages[3].text
    assert all("Payment received" not in text for text in bot.fake.texts(chat))


async def test_review_takes_stars_then_an_optional_comment(bot: BotEnv) -> None:
    chat, customer = await bot.link()
    assert "no delivered orders" in (await bot.fake.reply_to(chat, "/review")).text
    first = await delivered_order(bot, customer, chat)
    assert "/review" in bot.fake.texts(chat)[-1]
    second = await delivered_order(bot, customer, chat)

    before = len(bot.fake.messages(chat))
    await bot.fake.say(chat, "/review")
    questions = (await bot.fake.wait_messages(chat, before + 2))[before:]
    assert f"#{second['number']}" in questions[0].text  # newest first
    assert f"#{first['number']}" in questions[1].text
    assert buttons_data(questions[1]) == [f"review:{first['id']}:{stars}" for stars in range(1, 6)]

    await bot.fake.press(chat, questions[1], f"review:{first['id']}:4")
    [prompt] = (await bot.fake.wait_messages(chat, before + 3))[before + 2 :]
    assert "Would you like to add a comment" in prompt.text
    assert bot.fake.callback_answers[-1]["text"] == "⭐⭐⭐⭐"
    assert questions[1].buttons() == []  # taken off, so the question can't be answered twice
    thanks = await bot.fake.reply_to(chat, "Lovely tea, <fast> delivery")
    assert "Thank you for your review" in thanks.text

    reviews = (await bot.client.get("/api/v1/reviews", params={"order_id": first["id"]})).json()["items"]
    assert [(r["stars"], r["comment"], r["customer_id"]) for r in reviews] == [
        (4, "Lovely tea, <fast> delivery", customer["id"])
    ]
    events = (await bot.client.get(f"/api/v1/orders/{first['id']}/events")).json()["items"]
    assert events[-1]["type"] == "review.created"
    assert events[-1]["data"]["review"]["stars"] == 4

    # The second order: two stars, no comment.
    await bot.fake.press(chat, questions[0], f"review:{second['id']}:2")
    await bot.fake.wait_messages(chat, len(bot.fake.messages(chat)) + 1)
    assert "Thank you" in (await bot.fake.reply_to(chat, "/skip")).text
    [review] = (await bot.client.get("/api/v1/reviews", params={"order_id": second["id"]})).json()["items"]
    assert (review["stars"], review["comment"]) == (2, None)

    assert "no delivered orders" in (await bot.fake.reply_to(chat, "/review")).text
    assert "nothing to skip" in (await bot.fake.reply_to(chat, "/skip")).text
    # A stale button (the order has its review) is answered, and nothing is stored twice.
    await bot.fake.press(chat, questions[1], f"review:{first['id']}:1")
    await wait_answer(bot, "can't be reviewed")
    assert len((await bot.client.get("/api/v1/reviews", params={"order_id": first["id"]})).json()["items"]) == 1


async def wait_answer(bot: BotEnv, text: str) -> None:
    from tests.conftest import wait_for

    await wait_for(
        lambda: any(text in answer.get("text", "") for answer in bot.fake.callback_answers),
        message=f"a callback answer with {text!r}",
    )


async def test_unknown_commands_and_stray_text_point_to_help(bot: BotEnv) -> None:
    chat, _ = await bot.link()
    assert "don't know that command" in (await bot.fake.reply_to(chat, "/frobnicate")).text
    assert "Send /help" in (await bot.fake.reply_to(chat, "hello?")).text
    help_text = (await bot.fake.reply_to(chat, "/help")).text
    for command in ("/orders", "/order", "/review", "/stop", "/start", "/help"):
        assert command in help_text


async def test_a_reply_refused_with_429_is_sent_after_retry_after(bot: BotEnv) -> None:
    chat, _ = await bot.link()
    bot.fake.fail_next(chat, flood(1))
    asked = time.monotonic()
    reply = await bot.fake.reply_to(chat, "/help")
    assert "/orders" in reply.text
    assert reply.at - asked >= 0.95  # waited out Telegram's retry_after, not sent at once
    assert not bot.fake.failures[chat]
