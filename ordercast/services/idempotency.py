"""Idempotency keys: the same key and body replays the first response; never two effects."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError

from ordercast.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from ordercast.models import IdempotencyKey


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: dict[str, Any]


def request_hash(body: Any) -> str:
    """Equal JSON documents hash alike, whatever their key order or spacing."""
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def claim(user_id: str, key: str, digest: str, *, lease: float, ttl: float) -> IdempotencyKey | StoredResponse:
    """Take `key` for a new request, or return the response the first request stored."""
    now = datetime.now(UTC)
    for _ in range(3):
        try:
            return await IdempotencyKey.create(
                user_id=user_id,
                key=key,
                request_hash=digest,
                locked_until=now + timedelta(seconds=lease),
                created_at=now,
            )
        except IntegrityError:
            existing = await IdempotencyKey.get_or_none(user_id=user_id, key=key)
        if existing is None:
            continue  # released or expired between our insert and read: try again
        if existing.created_at < now - timedelta(seconds=ttl):
            await IdempotencyKey.filter(id=existing.id, created_at=existing.created_at).delete()
            continue
        if existing.request_hash != digest:
            raise IdempotencyKeyReused(details={"key": key})
        if existing.response_status is not None and existing.response_body is not None:
            return StoredResponse(existing.response_status, existing.response_body)
        if existing.locked_until > now:
            raise IdempotencyKeyInFlight(details={"key": key})
        # The first request died holding the key: take it over, unless someone else just did.
        taken = await IdempotencyKey.filter(
            id=existing.id, locked_until=existing.locked_until, response_status=None
        ).update(locked_until=now + timedelta(seconds=lease))
        if taken:
            existing.locked_until = now + timedelta(seconds=lease)
            return existing
        raise IdempotencyKeyInFlight(details={"key": key})
    raise IdempotencyKeyInFlight(details={"key": key})


async def complete(conn: BaseDBAsyncClient, claimed: IdempotencyKey, response: StoredResponse) -> None:
    """Store the response in the transaction that made the effect, so both land or neither."""
    await (
        IdempotencyKey.filter(id=claimed.id)
        .using_db(conn)
        .update(response_status=response.status, response_body=response.body)
    )


async def release(claimed: IdempotencyKey) -> None:
    """Free a key whose request failed before any effect, so the client can retry it."""
    await IdempotencyKey.filter(id=claimed.id, response_status=None).delete()


async def purge_expired(ttl: float) -> int:
    cutoff = datetime.now(UTC) - timedelta(seconds=ttl)
    return await IdempotencyKey.filter(created_at__lt=cutoff).delete()
