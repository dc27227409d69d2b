"""The delivery queue on SQLite and PostgreSQL: heads of each recipient's queue, oldest first, leased;
leases that run out are taken over; concurrent claimers never share a row or a recipient."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from ordercast.models import Delivery
from ordercast.models.db import tortoise_config, upgrade
from ordercast.notify.queue import Claimed, DeliveryQueue
from tests.conftest import create_postgres_database, wait_for


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path_factory.mktemp('queue') / 'queue.db'}"
        await upgrade(url)
        yield url
        return
    url, drop = await create_postgres_database()
    await upgrade(url)
    yield url
    await drop()


@contextlib.asynccontextmanager
async def queue(url: str, lease: float = 30) -> AsyncIterator[DeliveryQueue]:
    # Initialised inside the test's own task: Tortoise keeps its connections in context variables.
    # Its executors cache each model's SQL per connection name, not per dialect: this process
    # switches between SQLite and PostgreSQL under the one name "default", so start afresh.
    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(url, pool_size=8))
    try:
        await Delivery.all().delete()
        yield DeliveryQueue(postgres=url.startswith("postgres"), lease=lease)
    finally:
        await Tortoise.close_connections()


async def add(recipient: str, count: int = 1, channel: str = "telegram") -> list[Delivery]:
    now = datetime.now(UTC)
    return [
        await Delivery.create(
            event_id=f"evt_{secrets.token_hex(8)}",
            channel=channel,
            recipient=recipient,
            occurred_at=now,
            next_attempt_at=now,
        )
        for _ in range(count)
    ]


def ids(claimed: list[Claimed]) -> list[str]:
    return [c.id for c in claimed]


async def test_only_the_head_of_each_recipients_queue_is_claimed_oldest_first(database: str) -> None:
    async with queue(database) as q:
        a = await add("a", 3)
        b = await add("b", 2)
        await add("c", 1, channel="push")  # not a channel we send
        first = await q.claim({"telegram": 10})
        assert ids(first) == [a[0].id, b[0].id]
        assert await q.claim({"telegram": 10}) == []  # the heads are leased: nothing else is due
        assert await q.sent(first[0], datetime.now(UTC))
        assert ids(await q.claim({"telegram": 10})) == [a[1].id]


async def test_the_limit_takes_the_oldest_heads(database: str) -> None:
    async with queue(database) as q:
        rows = [(await add(f"r{n}"))[0] for n in range(5)]
        assert ids(await q.claim({"telegram": 2})) == [rows[0].id, rows[1].id]
        assert ids(await q.claim({"telegram": 2})) == [rows[2].id, rows[3].id]


async def test_a_lease_that_runs_out_is_taken_over(database: str) -> None:
    async with queue(database, lease=0.3) as q:
        [row] = await add("a")
        [held] = await q.claim({"telegram": 10})
        assert await q.claim({"telegram": 10}) == []
        [taken] = await wait_for(lambda: q.claim({"telegram": 10}), timeout=5, message="the lease to run out")
        assert taken.id == row.id
        assert (held.attempts, taken.attempts) == (1, 2)
        # The first holder can no longer record an outcome; the one holding it now can.
        assert not await q.sent(held, datetime.now(UTC))
        assert await q.sent(taken, datetime.now(UTC))
        assert (await Delivery.get(seq=row.seq)).status == "sent"


async def test_a_retry_is_claimed_again_once_due(database: str) -> None:
    async with queue(database) as q:
        [row, after] = await add("a", 2)
        [claimed] = await q.claim({"telegram": 10})
        assert await q.retry(claimed, "Bad Gateway", delay=0.3)
        assert await q.claim({"telegram": 10}) == []  # the retrying head still blocks its successor
        [again] = await wait_for(lambda: q.claim({"telegram": 10}), timeout=5, message="the retry to be due")
        assert again.id == row.id
        stored = await Delivery.get(seq=row.seq)
        assert (stored.status, stored.attempts, stored.last_error) == ("sending", 2, "Bad Gateway")
        assert await q.fail(again, "Bad Request: message is too long")
        assert ids(await q.claim({"telegram": 10})) == [after.id]  # a failed head no longer blocks


async def test_a_gone_recipient_skips_everything_queued_for_it(database: str) -> None:
    async with queue(database) as q:
        gone = await add("gone", 3)
        [other] = await add("other")
        claimed = await q.claim({"telegram": 10})
        assert await q.skip_recipient(claimed[0], "Forbidden: bot was blocked by the user") == 3
        statuses = [(await Delivery.get(seq=row.seq)).status for row in gone]
        assert statuses == ["skipped"] * 3
        assert (await Delivery.get(seq=other.seq)).status == "sending"


async def test_a_released_claim_is_due_again_at_once(database: str) -> None:
    async with queue(database) as q:
        [row] = await add("a")
        [claimed] = await q.claim({"telegram": 10})
        assert await q.release(claimed)
        [again] = await q.claim({"telegram": 10})
        assert (again.id, again.attempts) == (row.id, 1)


async def test_each_channel_is_claimed_up_to_its_own_limit(database: str) -> None:
    async with queue(database) as q:
        # Telegram's backlog is older: one shared limit would give it every slot.
        chats = [(await add(f"chat-{n}"))[0] for n in range(4)]
        devices = [(await add(f"device-{n}", channel="push"))[0] for n in range(3)]
        claimed = await q.claim({"telegram": 2, "push": 2})
        assert ids(claimed) == [chats[0].id, chats[1].id, devices[0].id, devices[1].id]
        assert ids(await q.claim({"telegram": 0, "push": 5})) == [devices[2].id]


async def test_a_claim_released_for_later_waits_with_its_attempt_given_back(database: str) -> None:
    async with queue(database) as q:
        [row] = await add("a")
        [claimed] = await q.claim({"telegram": 10})
        assert await q.release(claimed, after=0.3, error="rate limited")
        stored = await Delivery.get(seq=row.seq)
        assert (stored.status, stored.attempts, stored.last_error) == ("pending", 0, "rate limited")
        assert await q.claim({"telegram": 10}) == []  # not before its time
        [again] = await wait_for(lambda: q.claim({"telegram": 10}), timeout=5, message="the release to be due")
        assert (again.id, again.attempts) == (row.id, 1)


async def test_concurrent_claimers_never_share_a_row_or_a_recipient(database: str) -> None:
    async with queue(database) as q:
        recipients = [f"chat-{n}" for n in range(12)]
        queued = {r: [row.seq for row in await add(r, 4)] for r in recipients}
        sent: dict[str, list[int]] = {r: [] for r in recipients}
        in_flight: set[str] = set()

        async def worker() -> None:
            idle = 0
            while idle < 3:
                claimed = await q.claim({"telegram": 3})
                idle = 0 if claimed else idle + 1
                for delivery in claimed:
                    assert delivery.recipient not in in_flight, "two deliveries to one recipient at once"
                    in_flight.add(delivery.recipient)
                await asyncio.sleep(0)
                for delivery in claimed:
                    in_flight.discard(delivery.recipient)
                    sent[delivery.recipient].append(delivery.seq)
                    assert await q.sent(delivery, datetime.now(UTC))

        await asyncio.gather(*(worker() for _ in range(4)))
        assert sent == queued  # each exactly once, in queue order per recipient
