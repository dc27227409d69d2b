"""What customers read: status messages (Telegram now, Web Push next) and order summaries, per locale.

The words are gettext messages (English built in; a catalog at
`locales/<lang>/LC_MESSAGES/ordercast.mo` translates them), money and dates are formatted by Babel
for the customer's locale. Every template renders as Telegram HTML (values escaped) or plain text.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from gettext import NullTranslations
from html import escape
from pathlib import Path
from typing import Any, Final, Literal

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_timedelta
from babel.numbers import format_currency
from babel.support import Translations

from ordercast.events import parse_time

LOCALES_DIR: Final = Path(__file__).parent / "locales"
DOMAIN: Final = "ordercast"
DEFAULT_LOCALE: Final = "en"

Markup = Literal["html", "text"]


def N_(message: str) -> str:
    return message


STATUS_LABELS: Final = {
    "pending_payment": N_("Awaiting payment"),
    "paid": N_("Paid"),
    "payment_failed": N_("Payment failed"),
    "expired": N_("Expired"),
    "accepted": N_("Confirmed"),
    "packing": N_("Being packed"),
    "dispatched": N_("On its way"),
    "delivered": N_("Delivered"),
    "cancelled": N_("Cancelled"),
    "refunded": N_("Refunded"),
}
STATUS_ICONS: Final = {
    "paid": "✅",
    "payment_failed": "⚠️",
    "expired": "⌛",
    "accepted": "👍",
    "packing": "📦",
    "dispatched": "🚚",
    "delivered": "🎉",
    "cancelled": "❌",
    "refunded": "💸",
}
# Statuses an order can be cancelled from after its payment arrived (so the money goes back).
_PAID_BEFORE: Final = frozenset({"paid", "accepted", "packing"})


@functools.lru_cache(maxsize=128)
def parse_locale(name: str) -> Locale:
    """`name` (`en`, `de-DE`, `pt_BR`) as a Babel locale; English when Babel doesn't know it."""
    try:
        return Locale.parse(name.replace("-", "_"))
    except (ValueError, TypeError, UnknownLocaleError):
        return Locale.parse(DEFAULT_LOCALE)


@functools.lru_cache(maxsize=128)
def _translations(locale: str) -> NullTranslations:
    return Translations.load(str(LOCALES_DIR), [locale, DEFAULT_LOCALE], DOMAIN)


@dataclass(frozen=True, slots=True)
class Value:
    """A value put into a message: escaped for HTML, and shown as `style` there."""

    text: str
    style: Literal["plain", "bold", "code"] = "bold"

    def render(self, markup: Markup) -> str:
        if markup == "text":
            return self.text
        escaped = escape(self.text, quote=False)
        if self.style == "bold":
            return f"<b>{escaped}</b>"
        if self.style == "code":
            return f"<code>{escaped}</code>"
        return escaped


class Texts:
    """Messages in one locale: gettext for the words, Babel for money and dates."""

    def __init__(self, locale: str, markup: Markup = "html") -> None:
        self.locale = parse_locale(locale or DEFAULT_LOCALE)
        self.markup: Markup = markup
        self._translations = _translations(str(self.locale))

    def gettext(self, message: str) -> str:
        return self._translations.gettext(message)

    def fill(self, message: str, **values: Value | str) -> str:
        """The translated `message` with `{name}` placeholders filled; the words are escaped too in HTML."""
        template = self.gettext(message)
        if self.markup == "html":
            template = escape(template, quote=False)
        rendered = {
            name: value.render(self.markup) if isinstance(value, Value) else Value(value, "plain").render(self.markup)
            for name, value in values.items()
        }
        return template.format_map(rendered)

    def money(self, amount: str | Decimal, currency: str) -> str:
        try:
            value = Decimal(amount)
        except InvalidOperation:
            return f"{amount} {currency}"
        return str(format_currency(value, currency, locale=self.locale))

    def date(self, moment: datetime) -> str:
        """A short date with the weekday, as the locale writes it: `Thu, Dec 3`."""
        return str(format_skeleton("MMMEd", moment, locale=self.locale))

    def duration(self, delta: timedelta) -> str:
        return str(format_timedelta(delta, threshold=2, locale=self.locale))

    def status(self, status: str) -> str:
        return self.gettext(STATUS_LABELS.get(status, status))

    @staticmethod
    def number(order: dict[str, Any]) -> str:
        return f"#{order['number']}"


@dataclass(frozen=True, slots=True)
class Shop:
    """What the status messages promise about the shop's timing."""

    packing_hours: int = 24
    delivery_days: int = 3


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
    if not isinstance(status, str) or not isinstance(order, dict):
        return None
    t = Texts(locale, markup)
    number = Value(t.number(order))
    total = Value(t.money(order["total"], order["currency"]))
    changed_at = parse_time(order["updated_at"])
    title: str
    body: str
    if status == "paid":
        title = t.gettext(N_("Payment received"))
        body = t.fill(
            N_("We've received {total} for order {number}. We'll confirm it shortly and start preparing it."),
            total=total,
            number=number,
        )
    elif status == "accepted":
        title = t.gettext(N_("Order confirmed"))
        body = t.fill(
            N_("Order {number} is confirmed. We'll pack it within {packing_time} and tell you when it's on its way."),
            number=number,
            packing_time=Value(t.duration(timedelta(hours=shop.packing_hours))),
        )
    elif status == "packing":
        title = t.gettext(N_("Being packed"))
        body = t.fill(
            N_("We're packing order {number} right now. You'll get a tracking number as soon as it ships."),
            number=number,
        )
    elif status == "dispatched":
        title = t.gettext(N_("On its way"))
        arrival = Value(t.date(changed_at + timedelta(days=shop.delivery_days)))
        if order.get("tracking_number"):
            body = t.fill(
                N_("Order {number} has shipped! Tracking number: {tracking}. It should arrive by {date}."),
                number=number,
                tracking=Value(order["tracking_number"], "code"),
                date=arrival,
            )
        else:
            body = t.fill(N_("Order {number} has shipped! It should arrive by {date}."), number=number, date=arrival)
    elif status == "delivered":
        title = t.gettext(N_("Delivered"))
        body = t.fill(
            N_("Order {number} has been delivered. Enjoy! How did we do? Send {command} to rate it."),
            number=number,
            command="/review",
        )
    elif status == "payment_failed":
        title = t.gettext(N_("Payment failed"))
        body = t.fill(
            N_(
                "The payment of {total} for order {number} didn't go through. Please try again with another card "
                "or payment method: we're keeping your order for now."
            ),
            total=total,
            number=number,
        )
    elif status == "expired":
        title = t.gettext(N_("Order expired"))
        body = t.fill(
            N_("Order {number} expired because no payment arrived. If you still want it, please place a new order."),
            number=number,
        )
    elif status == "cancelled":
        title = t.gettext(N_("Order cancelled"))
        if data.get("from") in _PAID_BEFORE:
            body = t.fill(
                N_("Order {number} has been cancelled. Your payment of {total} will be refunded in the next few days."),
                number=number,
                total=total,
            )
        else:
            body = t.fill(N_("Order {number} has been cancelled. No payment was taken."), number=number)
    elif status == "refunded":
        title = t.gettext(N_("Refund issued"))
        body = t.fill(
            N_("We've refunded {total} for order {number}. It can take a few business days to show on your statement."),
            total=total,
            number=number,
        )
    else:
        return None
    if markup == "html":
        title = escape(title, quote=False)
    return Notice(status=status, title=title, body=body)


def order_line(order: dict[str, Any], t: Texts) -> str:
    """One line of `/orders`: number, status, total and date."""
    return t.fill(
        N_("{number} · {status} · {total} · {date}"),
        number=Value(t.number(order)),
        status=t.status(order["status"]),
        total=t.money(order["total"], order["currency"]),
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
    lines.append(t.fill(N_("Total: {total}"), total=Value(t.money(order["total"], order["currency"]))))
    if order.get("tracking_number"):
        lines.append(t.fill(N_("Tracking number: {tracking}"), tracking=Value(order["tracking_number"], "code")))
    return "\n".join(lines)


# What admins read: in-app notifications and Web Push, from the same events (plain text, English
# unless a catalog translates it).
ADMIN_LOCALE: Final = DEFAULT_LOCALE
Urgency = Literal["low", "normal", "high"]
_ADMIN_STATUS: Final[dict[str, tuple[str, str, Urgency]]] = {
    # status entered: (category, priority, urgency)
    "paid": ("payments", "high", "high"),
    "payment_failed": ("payments", "high", "high"),
    "refunded": ("payments", "normal", "normal"),
    "expired": ("orders", "normal", "normal"),
    "cancelled": ("orders", "normal", "normal"),
    "accepted": ("orders", "low", "normal"),
    "packing": ("orders", "low", "normal"),
    "dispatched": ("orders", "low", "normal"),
    "delivered": ("orders", "low", "normal"),
}
_ALERT_PRIORITY: Final = {"info": "low", "warning": "normal", "error": "high", "critical": "critical"}
# Web Push payloads are small (about 4 KB after encryption): long texts are cut.
MAX_PUSH_TITLE: Final = 120
MAX_PUSH_BODY: Final = 400


@dataclass(frozen=True, slots=True)
class AdminNotice:
    """What an event tells the admins: the in-app notification, and the push made from it."""

    category: str
    priority: str
    title: str
    body: str
    url: str  # a path on the dashboard
    tag: str  # the device shows one notification per tag: a newer one replaces it
    urgency: Urgency = "normal"
    topic: str | None = None  # Web Push Topic: a newer push replaces an unsent older one
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
                total=t.money(order["total"], order["currency"]),
                items=_items_summary(order.get("items") or [], t),
            ),
            **_order_links(order),
        )
    if event_type == "order.status_changed" and isinstance(order, dict) and data.get("to") in _ADMIN_STATUS:
        to = str(data["to"])
        category, priority, urgency = _ADMIN_STATUS[to]
        number = t.number(order)
        total = t.money(order["total"], order["currency"]) if to in ("paid", "payment_failed", "refunded") else ""
        if to == "paid":
            title = t.fill(N_("Payment received for {number}"), number=number)
            body = t.fill(
                N_("Order {number} is paid: {total}. Confirm it to start packing."), number=number, total=total
            )
        elif to == "payment_failed":
            title = t.fill(N_("Payment failed for {number}"), number=number)
            body = t.fill(N_("The payment of {total} for order {number} failed."), number=number, total=total)
        elif to == "refunded":
            title = t.fill(N_("Order {number} refunded"), number=number)
            body = t.fill(N_("{total} was refunded for order {number}."), number=number, total=total)
        else:
            title = t.fill(N_("Order {number}: {status}"), number=number, status=t.status(to))
            body = t.fill(
                N_("Order {number} went from {old} to {new}."),
                number=number,
                old=t.status(str(data.get("from", ""))),
                new=t.status(to),
            )
            if to == "dispatched" and order.get("tracking_number"):
                body += " " + t.fill(N_("Tracking number: {tracking}"), tracking=order["tracking_number"])
        return AdminNotice(category, priority, title, body, urgency=urgency, **_order_links(order))
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


@dataclass(frozen=True, slots=True)
class PushMessage:
    """A Web Push: the encrypted JSON the service worker shows, and the headers that steer it."""

    title: str
    body: str
    url: str
    tag: str
    urgency: Urgency
    topic: str | None

    def payload(self, base_url: str) -> dict[str, str]:
        url = self.url if self.url.startswith(("http://", "https://")) else base_url + self.url
        return {"title": self.title[:MAX_PUSH_TITLE], "body": self.body[:MAX_PUSH_BODY], "url": url, "tag": self.tag}


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
            topic=None,
        )
    notice = admin_notice(event_type, data)
    if notice is None:
        return None
    return PushMessage(notice.title, notice.body, notice.url, notice.tag, notice.urgency, notice.topic)
