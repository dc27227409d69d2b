"""Planning is pure: an event and who could hear of it → the delivery rows, pending or skipped."""

from __future__ import annotations

from typing import Any

import pytest

from ordercast.notify.planning import CUSTOMER_STATUSES, AdminRecipient, Audience, CustomerChat, Planned, plan


def status_changed(to: str) -> dict[str, Any]:
    return {"order": {"id": "ord_x", "status": to}, "from": "pending_payment", "to": to}


CHAT = CustomerChat(chat_id=42, locale="de", stopped=False, inactive=False)


@pytest.mark.parametrize("to", sorted(CUSTOMER_STATUSES))
def test_every_customer_status_change_plans_one_telegram_message(to: str) -> None:
    assert plan("order.status_changed", status_changed(to), Audience(customer_chat=CHAT)) == [
        Planned(channel="telegram", recipient="42", locale="de")
    ]


def test_a_customer_without_a_chat_gets_no_row() -> None:
    assert plan("order.status_changed", status_changed("paid"), Audience()) == []


@pytest.mark.parametrize("event_type", ["order.created", "order.updated", "review.created"])
def test_other_events_plan_no_telegram_message(event_type: str) -> None:
    assert plan(event_type, {"order": {}}, Audience(customer_chat=CHAT)) == []


@pytest.mark.parametrize(
    ("chat", "reason"),
    [
        (CustomerChat(chat_id=42, locale="en", stopped=True, inactive=False), "stopped"),
        (CustomerChat(chat_id=42, locale="en", stopped=False, inactive=True), "inactive"),
    ],
)
def test_a_stopped_or_inactive_chat_gets_a_skipped_row(chat: CustomerChat, reason: str) -> None:
    [row] = plan("order.status_changed", status_changed("dispatched"), Audience(customer_chat=chat))
    assert (row.status, row.reason) == ("skipped", reason)


def test_each_admin_device_gets_a_push_row_skipped_where_preferences_turn_push_off() -> None:
    admins = (
        AdminRecipient(user_id="usr_on", in_app=True, push=True, subscriptions=("sub_a", "sub_b")),
        AdminRecipient(user_id="usr_off", in_app=True, push=False, subscriptions=("sub_c",)),
        AdminRecipient(user_id="usr_none", in_app=True, push=True),
    )
    rows = plan("order.status_changed", status_changed("paid"), Audience(admins=admins))
    assert [(row.channel, row.recipient, row.status, row.reason) for row in rows] == [
        ("push", "sub_a", "pending", None),
        ("push", "sub_b", "pending", None),
        ("push", "sub_c", "skipped", "preferences"),
    ]
