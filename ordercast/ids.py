"""Opaque, time-sortable identifiers (`ord_…`) and short order numbers (`A1B2C3D4`)."""

from __future__ import annotations

import os
import secrets
import time

# Crockford's base32: no I, L, O, U, so a number read aloud or typed can't be misread.
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_NUMBER_CHARS = frozenset(CROCKFORD)
_ID_CHARS = frozenset(CROCKFORD.lower())


def new_id(prefix: str) -> str:
    """A ULID-shaped id: 48 bits of milliseconds, then 80 random bits, in base32 after `prefix_`."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return f"{prefix}_{''.join(reversed(chars)).lower()}"


def new_order_number() -> str:
    """Eight random Crockford base32 characters, upper case."""
    return "".join(secrets.choice(CROCKFORD) for _ in range(8))


def is_order_number(value: str) -> bool:
    return len(value) == 8 and all(c in _NUMBER_CHARS for c in value)


def is_id(value: str, prefix: str) -> bool:
    """Whether `value` has the shape of an id made by `new_id(prefix)` (checked before a query uses it)."""
    head, sep, body = value.partition("_")
    return sep == "_" and head == prefix and len(body) == 26 and all(c in _ID_CHARS for c in body)
