"""What admins read: in-app notifications and Web Push, from the same events (plain text, English
unless a catalog translates it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from ordercast.models.lifecycle import OrderStatus
from ordercast.notify.templates.texts import DEFAULT_LOCALE, N_, Texts

ADMIN_LOCALE: Final = DEFAULT_LOCALE
Urgency = Literal["low", "normal", "high"]
# Web Push payloads are small (about 4 KB after encryption): long texts are cut.
MAX_PUSH_TITLE: Final = 120
MAX_PUSH_BODY: Final = 400


@dataclass(frozen=True, slots=True)
class _StatusNotice:
    """How admins hear of an order entering a status. The words may use {number}, {total}, {status},
    {old} and {new}."""

    category: str
    priority: str
    urgency: Urgency = "normal"
    title: str = N_("Order {number}: {status}")
    body: str = N_("Order {number} went from {old} to {new}.")


S = OrderStatus
_STATUS_NOTICES: Final[dict[str, _StatusNotice]] = {
    S.PAID: _StatusNotice(
        "payments",
        "high",
        "high",
        N_("Payment received for {number}"),
        N_("Order {number} is paid: {total}. Confirm it to start packing."),
    ),
    S.PAYMENT_FAILED: _StatusNotice(
        "payments",
        "high",
        "high",
        N_("Payment failed for {number}"),
        N_("The payment of {total} for order {number} failed."),
    ),
    S.REFUNDED: _StatusNotice(
        "payments", "normal", "normal", N_("Order {number} refunded"), N_("{total} was refunded for order {number}.")
    ),
    S.EXPIRED: _StatusNotice("orders", "normal"),
    S.CANCELLED: _StatusNotice("orders", "normal"),
    S.ACCEPTED: _StatusNotice("orders", "low"),
    S.PACKING: _StatusNotice("orders", "low"),
    S.DISPATCHED: _StatusNotice("orders", "low"),
    S.DELIVERED: _StatusNotice("orders", "low"),
}
_ALERT_PRIORITY: Final = {"info": "low", "warning": "normal", "error": "high", "critical": "critical"}


@dataclass(frozen=True, slots=True)
class PushMessage:
    """A Web Push: the encrypted JSON the service worker shows, and the headers that steer it."""

    title: str
    body: str
    url: str  # a path on the dashboard (or a full URL)
    tag: str  # the device shows one notification per tag: a newer one replaces it
    urgency: Urgency = "normal"
    topic: str | None = None  # Web Push Topic: a newer push replaces an unsent older one

    def payload(self, base_url: str) -> dict[str, str]:
        url = self.url if self.url.startswith(("http://", "https://")) else base_url + self.url
        return {"title": self.title[:MAX_PUSH_TITLE], "body": self.body[:MAX_PUSH_BODY], "url": url, "tag": self.tag}


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminNotice(PushMessage):
    """What an event tells the admins: the in-app notification, whose title, body, link and tag are
    also the push made from it."""

    category: str
    priority: str
    order_id: str | None = None


def admin_notice(event_type: str, data: dict[str, Any], locale: str = ADMIN_LOCALE) -> AdminNotice | None:
    """The admins' notification for an event, or None for events they aren't notified of."""
    t = Texts(locale, "text")
    order = data.get("order")
    if event_type == "order.created" and isinstance(order, dict):
        return AdminNotice(
            category="orders",
            priority="normal",
            title=t.fill(N_("New order {number}"), number=t.number(order)),
            body=t.fill(
                N_("Order {number}: {total} from {items}"),
                number=t.number(order),
                total=t.total(order),
                items=_items_summary(order.get("items") or [], t),
            ),
            **_order_links(order),
        )
    to = data.get("to")
    if event_type == "order.status_changed" and isinstance(order, dict) and to in _STATUS_NOTICES:
        notice = _STATUS_NOTICES[to]
        values = {
            "number": t.number(order),
            "total": t.total(order),
            "status": t.status(to),
            "old": t.status(str(data.get("from", ""))),
            "new": t.status(to),
        }
        body = t.fill(notice.body, **values)
        if to == S.DISPATCHED and order.get("tracking_number"):
            body += " " + t.fill(N_("Tracking number: {tracking}"), tracking=order["tracking_number"])
        return AdminNotice(
            category=notice.category,
            priority=notice.priority,
            title=t.fill(notice.title, **values),
            body=body,
            urgency=notice.urgency,
            **_order_links(order),
        )
    review = data.get("review")
    if event_type == "review.created" and isinstance(review, dict):
        stars = int(review.get("stars") or 0)
        return AdminNotice(
            category="orders",
            priority="low",
            title=t.fill(N_("New review: {stars}"), stars="★" * stars + "☆" * (5 - stars)),
            body=review.get("comment") or t.gettext(N_("The customer left no comment.")),
            url=f"/?order={review['order_id']}",
            tag=f"review-{review['id']}",
            topic=review["order_id"],  # the order's Topic: every push about an order shares it
            order_id=review["order_id"],
        )
    alert = data.get("alert")
    # Only a new alert notifies: a repeat of an open one adds an occurrence to it, not another message.
    if event_type == "alert.raised" and isinstance(alert, dict) and alert.get("occurrences") == 1:
        return AdminNotice(
            category="alerts",
            priority=_ALERT_PRIORITY.get(str(alert.get("severity")), "high"),
            title=alert["title"],
            body=alert["message"],
            url=f"/?alert={alert['id']}",
            tag=f"alert-{alert['id']}",
            urgency="high",
            topic=alert["id"],
        )
    return None


def _order_links(order: dict[str, Any]) -> dict[str, Any]:
    # An order id (`ord_` and 26 characters of base32) is a valid Topic: at most 32 URL-safe characters.
    order_id = order["id"]
    return {"url": f"/?order={order_id}", "tag": f"order-{order_id}", "topic": order_id, "order_id": order_id}


def _items_summary(items: list[dict[str, Any]], t: Texts) -> str:
    shown = [t.fill(N_("{quantity} × {name}"), quantity=str(item["quantity"]), name=item["name"]) for item in items[:3]]
    summary = ", ".join(shown)
    if len(items) > 3:
        summary += " " + t.fill(N_("and {count} more"), count=str(len(items) - 3))
    return summary


def push_message(event_type: str, data: dict[str, Any]) -> PushMessage | None:
    """The push for an event: its admin notice, or (a test push) the notification it carries."""
    notification = data.get("notification")
    if event_type == "notification.created" and isinstance(notification, dict):
        urgent = notification.get("priority") in ("high", "critical")
        return PushMessage(
            title=notification["title"],
            body=notification["body"],
            url=notification.get("url") or "/",
            tag=f"notification-{notification['id']}",
            urgency="high" if urgent else "normal",
        )
    return admin_notice(event_type, data)
