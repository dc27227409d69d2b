"""Telegram's limits: so many messages per second overall and per chat, in one process or through Redis."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from ordercast.notify.limits import MemoryLimiter, RedisLimiter

REDIS = os.environ.get("ORDERCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[Any]:
    """10 messages/s overall, 2/s per recipient."""
    if request.param == "memory":
        yield MemoryLimiter(per_second=10, per_recipient_per_second=2)
        return
    redis = Redis.from_url(REDIS)
    prefix = f"octest-limits:{secrets.token_hex(4)}:"
    try:
        yield RedisLimiter(redis, prefix=prefix, per_second=10, per_recipient_per_second=2)
    finally:
        keys = [key async for key in redis.scan_iter(match=f"{prefix}*")]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


async def reserve(limiter: Any, recipient: str) -> tuple[bool, float]:
    result = limiter.reserve(recipient)
    return await result if asyncio.iscoroutine(result) else result  # type: ignore[no-any-return]


async def test_recipients_share_the_overall_rate(limiter: Any) -> None:
    waits = [await reserve(limiter, f"chat-{n}") for n in range(5)]
    assert all(reserved for reserved, _ in waits)
    # One slot each, 0.1 s apart (give or take the time the calls took).
    for n, (_, wait) in enumerate(waits):
        assert n * 0.1 - 0.05 <= wait <= n * 0.1 + 0.01, waits


async def test_a_recipient_waits_for_its_own_slot_without_taking_an_overall_one(limiter: Any) -> None:
    assert await reserve(limiter, "a") == (True, 0.0)
    reserved, wait = await reserve(limiter, "a")
    assert not reserved
    assert 0.4 < wait <= 0.5
    # "a" took no overall slot while it waits: "b" gets the next one, 0.1 s after the first.
    reserved, wait = await reserve(limiter, "b")
    assert reserved
    assert 0.05 < wait <= 0.1


async def test_acquire_spaces_one_recipients_messages(limiter: Any) -> None:
    started = time.monotonic()
    for _ in range(3):
        await limiter.acquire("c")
    assert time.monotonic() - started >= 2 * 0.5 - 0.01


async def test_a_recipients_next_slot_counts_from_when_its_last_send_was_answered(limiter: Any) -> None:
    # A send answered 0.2 s after its slot (slow on the way): the next one must not reach Telegram
    # less than a full interval after it, so it waits 0.5 s from the answer, not 0.3 s.
    assert await reserve(limiter, "d") == (True, 0.0)
    await asyncio.sleep(0.2)  # the send taking its time (a duration, not a synchronisation)
    await limiter.sent("d")
    reserved, wait = await reserve(limiter, "d")
    assert not reserved
    assert 0.45 < wait <= 0.5


async def test_a_pause_holds_back_every_recipient(limiter: Any) -> None:
    await limiter.pause(0.5)
    reserved, wait = await reserve(limiter, "anyone")
    assert reserved
    assert 0.45 <= wait <= 0.5
    # After the pause the overall rate goes on from there: the next slot is 0.1 s later.
    reserved, wait = await reserve(limiter, "someone-else")
    assert reserved
    assert 0.5 <= wait <= 0.6


async def test_a_slot_further_away_than_within_is_not_taken_and_its_wait_is_told(limiter: Any) -> None:
    # A sender holding a delivery's lease must not wait out a pause longer than the lease lasts.
    await limiter.pause(0.5)
    wait = await limiter.acquire("e", within=0.2)
    assert 0.45 <= wait <= 0.5
    # Nothing was taken: the next sender still gets the first slot after the pause.
    reserved, wait = await reserve(limiter, "someone-else")
    assert reserved
    assert 0.45 <= wait <= 0.5


async def test_a_recipients_own_slot_further_away_than_within_is_told(limiter: Any) -> None:
    assert await limiter.acquire("f", within=0.2) == 0.0
    wait = await limiter.acquire("f", within=0.2)
    assert 0.45 < wait <= 0.5
