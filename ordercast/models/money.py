"""Money: `Decimal` amounts with their currency's ISO 4217 minor-unit digits."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision, list_currencies

from ordercast.errors import Invalid

_CURRENCIES = frozenset(list_currencies())
# Largest amount the database column holds (DecimalField(max_digits=20, decimal_places=4)).
MAX_AMOUNT = Decimal("9999999999999999")


def is_currency(code: str) -> bool:
    return code in _CURRENCIES


def minor_digits(currency: str) -> int:
    return int(get_currency_precision(currency))


def parse_amount(text: str, currency: str, *, field: str) -> Decimal:
    """A decimal string with at most the currency's minor digits, normalised to exactly that many."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise Invalid.field(field, 'must be a decimal string such as "25.90"') from None
    if not amount.is_finite() or "e" in text.lower():
        raise Invalid.field(field, 'must be a plain decimal string such as "25.90"')
    digits = minor_digits(currency)
    exponent = amount.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > digits:
        raise Invalid.field(field, f"{currency} takes at most {digits} decimal digits")
    if amount < 0:
        raise Invalid.field(field, "must not be negative")
    if amount > MAX_AMOUNT:
        raise Invalid.field(field, "is too large")
    return quantize(amount, currency)


def quantize(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_digits(currency)))


def format_amount(amount: Decimal, currency: str) -> str:
    return str(quantize(amount, currency))
