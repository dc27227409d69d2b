"""Status messages: one per status, saying what comes next, money and dates in the customer's locale."""

from __future__ import annotations

from typing import Any

import pytest

from ordercast.models.lifecycle import OrderStatus
from ordercast.notify.planning import CUSTOMER_STATUSES
from ordercast.notify.templates.customer import STATUS_ICONS, order_details, status_notice
from ordercast.notify.templates.texts import Shop, Texts

ORDER = {
    "id": "ord_x",
    "number": "A1B2C3D4",
    "status": "dispatched",
    "currency": "EUR",
    "total": "1234.50",
    "items": [{"sku": "T", "name": "Tea <green> & co", "quantity": 2, "unit_price": "617.25", "total": "1234.50"}],
    "tracking_number": "1Z<99>&",
    "created_at": "2026-12-01T10:00:00.000000Z",
    "updated_at": "2026-12-01T10:00:00.000000Z",
}


def notice(to: str, locale: str = "en", markup: str = "html", **order: Any) -> str:
    data = {"order": {**ORDER, **order}, "from": "packing", "to": to}
    result = status_notice(data, locale=locale, shop=Shop(packing_hours=24, delivery_days=3), markup=markup)  # type: ignore[arg-type]
    assert result is not None
    return result.telegram_html() if markup == "html" else f"{result.title}\n{result.body}"


@pytest.mark.parametrize("status", sorted(CUSTOMER_STATUSES))
def test_every_customer_status_has_a_message_naming_the_order(status: str) -> None:
    assert "<b>#A1B2C3D4</b>" in notice(status)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("paid", "€1,234.50"),
        ("accepted", "within <b>24 hours</b>"),
        ("packing", "tracking number as soon as it ships"),
        ("dispatched", "<code>1Z&lt;99&gt;&amp;</code>"),
        ("dispatched", "arrive by <b>Fri, Dec 4</b>"),
        ("delivered", "/review"),
        ("payment_failed", "try again"),
        ("expired", "place a new order"),
        ("cancelled", "will be refunded"),
        ("refunded", "We've refunded <b>€1,234.50</b>"),
    ],
)
def test_each_message_says_what_happens_next(status: str, expected: str) -> None:
    assert expected in notice(status)


def test_dispatched_without_tracking_still_gives_the_estimate() -> None:
    text = notice("dispatched", tracking_number=None)
    assert "Tracking" not in text
    assert "Fri, Dec 4" in text


def test_cancelled_before_payment_says_no_money_was_taken() -> None:
    data = {"order": ORDER, "from": "pending_payment", "to": "cancelled"}
    result = status_notice(data, locale="en", shop=Shop())
    assert result is not None
    assert "No payment was taken" in result.body


def test_money_and_dates_follow_the_locale() -> None:
    assert "1.234,50\xa0€" in notice("paid", locale="de-DE")
    assert "Fr., 4. Dez." in notice("dispatched", locale="de")
    assert "￥1,235" in notice("paid", locale="ja", currency="JPY", total="1235")


def test_an_unknown_locale_falls_back_to_english() -> None:
    assert notice("paid", locale="xx-QQ") == notice("paid", locale="en")


def test_plain_text_has_no_markup_and_no_escapes() -> None:
    text = notice("dispatched", markup="text")
    assert "1Z<99>&" in text
    assert "<b>" not in text


def test_order_details_escape_every_value() -> None:
    text = order_details(ORDER, Texts("en"))
    assert "Tea &lt;green&gt; &amp; co" in text
    assert "<code>1Z&lt;99&gt;&amp;</code>" in text
    assert "<b>€1,234.50</b>" in text


def test_a_status_customers_do_not_hear_of_has_no_message() -> None:
    assert status_notice({"order": ORDER, "to": "pending_payment"}, locale="en", shop=Shop()) is None


def test_a_paid_order_cancelled_says_the_payment_will_be_refunded() -> None:
    for paid in (OrderStatus.PAID, OrderStatus.ACCEPTED, OrderStatus.PACKING):
        result = status_notice({"order": ORDER, "from": paid, "to": "cancelled"}, locale="en", shop=Shop())
        assert result is not None
        assert result.body == (
            "Order <b>#A1B2C3D4</b> has been cancelled. Your payment of <b>€1,234.50</b> will be refunded "
            "in the next few days."
        )


def test_the_telegram_message_starts_with_the_statuss_icon_and_title() -> None:
    assert notice("delivered").startswith("🎉 <b>Delivered</b>\nOrder <b>#A1B2C3D4</b> has been delivered.")


def test_every_status_customers_hear_of_has_an_icon() -> None:
    assert set(CUSTOMER_STATUSES) <= set(STATUS_ICONS)
