"""A status message Telegram refuses for good raises an alert for the admins, keyed by the refusal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.bot.conftest import bot_env
from tests.bot.fakebot import TOO_LONG
from tests.conftest import new_order, wait_for


async def test_a_telegram_400_raises_an_alert_and_a_repeat_counts_an_occurrence(
    start_server: Callable[..., Any],
) -> None:
    async with bot_env(start_server, "polling") as bot:
        chat, customer = await bot.link()
        key = "delivery:telegram:message_is_too_long"

        async def open_alert(occurrences: int) -> dict[str, Any] | None:
            alerts = (await bot.client.get("/api/v1/alerts", params={"resolved": "false"})).json()["items"]
            found = next((alert for alert in alerts if alert["key"] == key), None)
            return found if found is not None and found["occurrences"] >= occurrences else None

        before = await open_alert(0)
        bot.fake.fail_next(chat, TOO_LONG)
        order = await new_order(bot.client, customer["id"])
        await bot.change(order, "paid")
        alert = await wait_for(lambda: open_alert((before or {}).get("occurrences", 0) + 1), message="the alert")
        assert alert["severity"] == "error"
        assert "Message is too long" in alert["message"]

        bot.fake.fail_next(chat, TOO_LONG)
        await bot.change(order, "accepted")
        again = await wait_for(lambda: open_alert(alert["occurrences"] + 1), message="a second occurrence")
        assert again["id"] == alert["id"]
        assert again["last_seen"] > alert["last_seen"]
