"""Opaque cursors bound to the filters they were made with, and the `limit` parameter."""

from __future__ import annotations

import base64
import binascii
import hashlib

import orjson
from starlette.datastructures import QueryParams

from ordercast.errors import Malformed
from ordercast.ids import is_id

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


def _fingerprint(filters: dict[str, str | None]) -> str:
    return hashlib.sha256(orjson.dumps(filters, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def encode_cursor(last_id: str, filters: dict[str, str | None]) -> str:
    payload = orjson.dumps({"after": last_id, "f": _fingerprint(filters)})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_cursor(cursor: str, filters: dict[str, str | None], *, prefix: str = "ord") -> str:
    """The id the previous page ended at; 400 if the cursor is bad or made with other filters.

    `prefix` is the kind of id a page ends at (`ord`), or `seq` for a queue position.
    """
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, orjson.JSONDecodeError, ValueError):
        raise Malformed("the cursor is not valid", details={"parameter": "cursor"}) from None
    after = payload.get("after") if isinstance(payload, dict) else None
    valid = isinstance(after, str) and (
        (after.isascii() and after.isdigit() and len(after) <= 18) if prefix == "seq" else is_id(after, prefix)
    )
    if not valid:
        raise Malformed("the cursor is not valid", details={"parameter": "cursor"})
    if payload.get("f") != _fingerprint(filters):
        raise Malformed("the cursor was made with other filters", details={"parameter": "cursor"})
    return str(payload["after"])


def parse_limit(query: QueryParams) -> int:
    text = query.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise Malformed(f"limit must be a whole number from 1 to {MAX_LIMIT}", details={"parameter": "limit"})
    return int(text)


def parse_bool(query: QueryParams, name: str) -> bool | None:
    text = query.get(name)
    if text is None:
        return None
    if text.lower() in {"true", "1"}:
        return True
    if text.lower() in {"false", "0"}:
        return False
    raise Malformed(f"{name} must be true or false", details={"parameter": name})
