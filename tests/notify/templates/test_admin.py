"""What admins read: one notification per event they hear of, and the push made from it."""

from __future__ import annotations

from typing import Any

import pytest

from ordercast.models.lifecycle import OrderStatus
from ordercast.notify.templates.admin import MAX_PUSH_BODY, MAX_PUSH_TITLE, AdminNotice, admin_notice, push_message

ORDER_ID = "ord_0123456789abcdefghjkmnpqrs"
ORDER = {
    "id": ORDER_ID,
    "number": "A1B2C3D4",
    "status": "packing",
    "currency": "EUR",
    "total": "1234.50",
    "items": [{"sku": f"T{n}", "name": f"Tea {n}", "quantity": n, "total": "1.00"} for n in range(1, 6)],
    "tracking_number": None,
}


def status_changed(to: str, frm: str = "accepted", **order: Any) -> AdminNotice:
    notice = admin_notice("order.status_changed", {"order": {**ORDER, **order}, "from": frm, "to": to})
    assert notice is not None
    return notice


@pytest.mark.parametrize("status", sorted(set(OrderStatus) - {OrderStatus.PENDING_PAYMENT}))
def test_every_status_an_order_enters_notifies_the_admins_with_a_link_to_it(status: OrderStatus) -> None:
    notice = status_changed(status)
    assert "#A1B2C3D4" in notice.title
    assert (notice.url, notice.tag, notice.topic, notice.order_id) == (
        f"/?order={ORDER_ID}",
        f"order-{ORDER_ID}",
        ORDER_ID,
        ORDER_ID,
    )


@pytest.mark.parametrize(
    ("status", "category", "priority", "urgency", "title", "body"),
    [
        (
            "paid",
            "payments",
            "high",
            "high",
            "Payment received for #A1B2C3D4",
            "Order #A1B2C3D4 is paid: €1,234.50. Confirm it to start packing.",
        ),
        (
            "payment_failed",
            "payments",
            "high",
            "high",
            "Payment failed for #A1B2C3D4",
            "The payment of €1,234.50 for order #A1B2C3D4 failed.",
        ),
        (
            "refunded",
            "payments",
            "normal",
            "normal",
            "Order #A1B2C3D4 refunded",
            "€1,234.50 was refunded for order #A1B2C3D4.",
        ),
        (
            "packing",
            "orders",
            "low",
            "normal",
            "Order #A1B2C3D4: Being packed",
            "Order #A1B2C3D4 went from Confirmed to Being packed.",
        ),
        (
            "cancelled",
            "orders",
            "normal",
            "normal",
            "Order #A1B2C3D4: Cancelled",
            "Order #A1B2C3D4 went from Confirmed to Cancelled.",
        ),
    ],
)
def test_money_statuses_say_the_amount_and_the_others_the_step(
    status: str, category: str, priority: str, urgency: str, title: str, body: str
) -> None:
    notice = status_changed(status)
    assert (notice.category, notice.priority, notice.urgency, notice.title, notice.body) == (
        category,
        priority,
        urgency,
        title,
        body,
    )


def test_a_dispatched_order_with_tracking_gives_the_tracking_number() -> None:
    notice = status_changed("dispatched", "packing", tracking_number="1Z<99>&")
    assert notice.body == "Order #A1B2C3D4 went from Being packed to On its way. Tracking number: 1Z<99>&"


def test_a_new_order_names_three_items_and_counts_the_rest() -> None:
    notice = admin_notice("order.created", {"order": ORDER})
    assert notice is not None
    assert (notice.category, notice.priority, notice.title) == ("orders", "normal", "New order #A1B2C3D4")
    assert notice.body == "Order #A1B2C3D4: €1,234.50 from 1 × Tea 1, 2 × Tea 2, 3 × Tea 3 and 2 more"


def test_only_a_new_alert_notifies() -> None:
    alert = {"id": "alr_1", "title": "Push down", "message": "503s", "severity": "critical", "occurrences": 1}
    notice = admin_notice("alert.raised", {"alert": alert})
    assert notice is not None
    assert (notice.category, notice.priority, notice.urgency, notice.tag) == (
        "alerts",
        "critical",
        "high",
        "alert-alr_1",
    )
    assert admin_notice("alert.raised", {"alert": {**alert, "occurrences": 2}}) is None


def test_events_admins_are_not_told_of_have_no_notice_and_no_push() -> None:
    data = {"order": ORDER, "from": "", "to": "pending_payment"}
    assert admin_notice("order.status_changed", data) is None
    assert push_message("order.status_changed", data) is None
    assert push_message("customer.created", {"customer": {}}) is None


def test_the_push_of_a_notice_is_its_title_body_link_and_tag_cut_to_fit() -> None:
    notice = status_changed("paid")
    push = push_message("order.status_changed", {"order": ORDER, "from": "pending_payment", "to": "paid"})
    assert push is not None
    assert (push.urgency, push.topic) == ("high", ORDER_ID)
    assert push.payload("https://shop.example") == {
        "title": notice.title,
        "body": notice.body,
        "url": f"https://shop.example/?order={ORDER_ID}",
        "tag": f"order-{ORDER_ID}",
    }
    long = AdminNotice(category="system", priority="low", title="t" * 500, body="b" * 500, url="https://x/", tag="t")
    payload = long.payload("https://shop.example")
    assert (len(payload["title"]), len(payload["body"]), payload["url"]) == (
        MAX_PUSH_TITLE,
        MAX_PUSH_BODY,
        "https://x/",
    )


def test_a_test_notification_is_pushed_as_it_was_stored() -> None:
    notification = {"id": "ntf_1", "title": "Test", "body": "It works", "url": None, "priority": "critical"}
    push = push_message("notification.created", {"notification": notification})
    assert push is not None
    assert (push.title, push.body, push.url, push.tag, push.urgency, push.topic) == (
        "Test",
        "It works",
        "/",
        "notification-ntf_1",
        "high",
        None,
    )
