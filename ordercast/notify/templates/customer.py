"""What customers read: status messages (Telegram now, Web Push next) and order summaries, per locale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from html import escape
from typing import Any, Final

from ordercast.events import parse_time
from ordercast.models.lifecycle import OrderStatus
from ordercast.notify.templates.texts import N_, Markup, Shop, Texts, Value

S = OrderStatus
# Status entered: (title, body). Every body may use {number}, {total}, {packing_time}, {date} (the
# expected arrival), {tracking} and {command}.
_MESSAGES: Final[dict[str, tuple[str, str]]] = {
    S.PAID: (
        N_("Payment received"),
        N_("We've received {total} for order {number}. We'll confirm it shortly and start preparing it."),
    ),
    S.ACCEPTED: (
        N_("Order confirmed"),
        N_("Order {number} is confirmed. We'll pack it within {packing_time} and tell you when it's on its way."),
    ),
    S.PACKING: (
        N_("Being packed"),
        N_("We're packing order {number} right now. You'll get a tracking number as soon as it ships."),
    ),
    S.DISPATCHED: (N_("On its way"), N_("Order {number} has shipped! It should arrive by {date}.")),
    S.DELIVERED: (
        N_("Delivered"),
        N_("Order {number} has been delivered. Enjoy! How did we do? Send {command} to rate it."),
    ),
    S.PAYMENT_FAILED: (
        N_("Payment failed"),
        N_(
            "The payment of {total} for order {number} didn't go through. Please try again with another card "
            "or payment method: we're keeping your order for now."
        ),
    ),
    S.EXPIRED: (
        N_("Order expired"),
        N_("Order {number} expired because no payment arrived. If you still want it, please place a new order."),
    ),
    S.CANCELLED: (N_("Order cancelled"), N_("Order {number} has been cancelled. No payment was taken.")),
    S.REFUNDED: (
        N_("Refund issued"),
        N_("We've refunded {total} for order {number}. It can take a few business days to show on your statement."),
    ),
}
# The bodies that depend on more than the status.
_SHIPPED_WITH_TRACKING: Final = N_(
    "Order {number} has shipped! Tracking number: {tracking}. It should arrive by {date}."
)
_CANCELLED_AFTER_PAYMENT: Final = N_(
    "Order {number} has been cancelled. Your payment of {total} will be refunded in the next few days."
)
# Statuses an order can be cancelled from after its payment arrived (so the money goes back).
_PAID_BEFORE: Final = frozenset({S.PAID, S.ACCEPTED, S.PACKING})
STATUS_ICONS: Final[dict[str, str]] = {
    S.PAID: "✅",
    S.PAYMENT_FAILED: "⚠️",
    S.EXPIRED: "⌛",
    S.ACCEPTED: "👍",
    S.PACKING: "📦",
    S.DISPATCHED: "🚚",
    S.DELIVERED: "🎉",
    S.CANCELLED: "❌",
    S.REFUNDED: "💸",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """A status message: a title and a body (both in the markup asked for), for Telegram or a push."""

    status: str
    title: str
    body: str

    def telegram_html(self) -> str:
        icon = STATUS_ICONS.get(self.status, "")
        return f"{icon} <b>{self.title}</b>\n{self.body}".lstrip()


def status_notice(data: dict[str, Any], *, locale: str, shop: Shop, markup: Markup = "html") -> Notice | None:
    """The message for an `order.status_changed` event's data, or None for a status customers don't hear of."""
    status = data.get("to")
    order = data.get("order")
    if not isinstance(status, str) or not isinstance(order, dict) or status not in _MESSAGES:
        return None
    title, body = _MESSAGES[status]
    tracking = order.get("tracking_number")
    if status == S.DISPATCHED and tracking:
        body = _SHIPPED_WITH_TRACKING
    elif status == S.CANCELLED and data.get("from") in _PAID_BEFORE:
        body = _CANCELLED_AFTER_PAYMENT
    t = Texts(locale, markup)
    arrival = parse_time(order["updated_at"]) + timedelta(days=shop.delivery_days)
    body = t.fill(
        body,
        number=Value(t.number(order)),
        total=Value(t.total(order)),
        packing_time=Value(t.duration(timedelta(hours=shop.packing_hours))),
        date=Value(t.date(arrival)),
        tracking=Value(tracking or "", "code"),
        command="/review",
    )
    title = t.gettext(title)
    if markup == "html":
        title = escape(title, quote=False)
    return Notice(status=status, title=title, body=body)


def order_line(order: dict[str, Any], t: Texts) -> str:
    """One line of `/orders`: number, status, total and date."""
    return t.fill(
        N_("{number} · {status} · {total} · {date}"),
        number=Value(t.number(order)),
        status=t.status(order["status"]),
        total=t.total(order),
        date=t.date(parse_time(order["created_at"])),
    )


def order_details(order: dict[str, Any], t: Texts) -> str:
    """`/order <number>`: the status, the items, the total and tracking."""
    lines = [
        t.fill(N_("Order {number}"), number=Value(t.number(order))),
        t.fill(N_("Status: {status}"), status=Value(t.status(order["status"]))),
        t.fill(N_("Placed: {date}"), date=t.date(parse_time(order["created_at"]))),
        "",
    ]
    for item in order["items"]:
        lines.append(
            t.fill(
                N_("{quantity} × {name}: {total}"),
                quantity=str(item["quantity"]),
                name=item["name"],
                total=t.money(item["total"], order["currency"]),
            )
        )
    lines.append(t.fill(N_("Total: {total}"), total=Value(t.total(order))))
    if order.get("tracking_number"):
        lines.append(t.fill(N_("Tracking number: {tracking}"), tracking=Value(order["tracking_number"], "code")))
    return "\n".join(lines)
