"""What every message shares: gettext for the words, Babel for money and dates, the shop's promises.

The words are gettext messages (English built in; a catalog at
`locales/<lang>/LC_MESSAGES/ordercast.mo` translates them), money and dates are formatted by Babel
for the reader's locale. Every message renders as Telegram HTML (values escaped) or plain text.
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

from ordercast.models.lifecycle import OrderStatus

LOCALES_DIR: Final = Path(__file__).parent.parent / "locales"
DOMAIN: Final = "ordercast"
DEFAULT_LOCALE: Final = "en"

Markup = Literal["html", "text"]


def N_(message: str) -> str:
    """Marks `message` for the catalog (`pybabel extract -k N_`); it is translated where it is shown."""
    return message


S = OrderStatus
# Keyed by the enum's members, looked up by the status names events carry (a StrEnum equals its value).
STATUS_LABELS: Final[dict[str, str]] = {
    S.PENDING_PAYMENT: N_("Awaiting payment"),
    S.PAID: N_("Paid"),
    S.PAYMENT_FAILED: N_("Payment failed"),
    S.EXPIRED: N_("Expired"),
    S.ACCEPTED: N_("Confirmed"),
    S.PACKING: N_("Being packed"),
    S.DISPATCHED: N_("On its way"),
    S.DELIVERED: N_("Delivered"),
    S.CANCELLED: N_("Cancelled"),
    S.REFUNDED: N_("Refunded"),
}


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

    def total(self, order: dict[str, Any]) -> str:
        """The order's total in its currency."""
        return self.money(order["total"], order["currency"])


@dataclass(frozen=True, slots=True)
class Shop:
    """What the status messages promise about the shop's timing."""

    packing_hours: int = 24
    delivery_days: int = 3
