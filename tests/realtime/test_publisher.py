"""Publishing after commit and the sweeper, on both brokers, with an in-memory outbox standing in for the database."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from ordercast.errors import Unavailable
from ordercast.events import ADMIN_CHANNEL, Event, Position
from ordercast.realtime.broker import Broker
from ordercast.realtime.publisher import Publisher, Sweeper
from ordercast.realtime.redisbroker import RedisBroker
from tests.realtime.conftest import REDIS, make_event, wait_for


@dataclass
class Outbox:
    """The outbox contract over a list: (event, committed at, published), in commit order."""

    rows: list[tuple[Event, float]] = field(default_factory=list)
    published: set[str] = field(default_factory=set)
    failures: int = 0  # the next `unpublished` calls that fail, as a database might

    def commit(self, *events: Event, age: float = 0.0) -> list[Event]:
        self.rows += [(event, time.monotonic() - age) for event in events]
        return list(events)

    async def unpublished(self, limit: int, older_than: float) -> list[Event]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the database is away")
        cutoff = time.monotonic() - older_than
        return [e for e, at in self.rows if e.id not in self.published and at <= cutoff][:limit]

    async def earlier_unpublished(self, event: Event) -> list[Event]:
        earlier: list[Event] = []
        for row, _ in self.rows:
            if row.id == event.id:
                break
            if row.ordering_key == event.ordering_key and row.id not in self.published:
                earlier.append(row)
        return earlier

    async def mark_published(self, events: Sequence[Event]) -> None:
        self.published.update(event.id for event in events)


async def history(broker: Broker) -> list[str]:
    current = await broker.current(ADMIN_CHANNEL)
    replay = await broker.replay(ADMIN_CHANNEL, Position(current.epoch, 0))
    assert isinstance(replay, list)
    return [event.id for _, event in replay]


async def test_publish_places_earlier_unpublished_events_of_the_same_key_first(broker: Broker) -> None:
    outbox = Outbox()
    v1, other, v2 = outbox.commit(
        make_event(ordering_key="ord_1"), make_event(ordering_key="ord_2"), make_event(ordering_key="ord_1")
    )
    publisher = Publisher(broker, outbox)
    assert await publisher.publish([v2])
    assert await history(broker) == [v1.id, v2.id]
    assert outbox.published == {v1.id, v2.id}
    assert await publisher.publish([v1, v2, other])
    assert await history(broker) == [v1.id, v2.id, other.id]


async def test_the_sweeper_publishes_what_was_left_unpublished_once(broker: Broker) -> None:
    outbox = Outbox(failures=2)
    [orphan] = outbox.commit(make_event(ordering_key="ord_1"), age=10)
    [fresh] = outbox.commit(make_event(ordering_key="ord_2"))
    publisher = Publisher(broker, outbox)
    async with Sweeper(publisher, outbox, interval=0.02, grace=5, max_backoff=0.05) as sweeper:
        await wait_for(lambda: orphan.id in outbox.published, message="the orphan to be swept")
        # Inside the grace period an event is left to the request that committed it.
        assert fresh.id not in outbox.published
        assert await history(broker) == [orphan.id]
        sweeper.wake()
        assert await sweeper.sweep() == 0


async def test_an_after_commit_publish_that_never_happens_is_left_to_the_sweeper(broker: Broker) -> None:
    outbox = Outbox()
    publisher = Publisher(broker, outbox, publish_delay=30, close_timeout=0)
    [event] = outbox.commit(make_event(ordering_key="ord_1"))
    publisher.publish_soon([event])
    await publisher.close()  # the process stops within the delay: nothing was placed
    assert await history(broker) == []
    assert event.id not in outbox.published
    async with Sweeper(Publisher(broker, outbox), outbox, interval=0.02, grace=0):
        await wait_for(lambda: event.id in outbox.published, message="the sweeper")
    # A late second publish (another process) is harmless: the event keeps its one position.
    assert await Publisher(broker, outbox).publish([event])
    assert await history(broker) == [event.id]


async def test_a_failed_publish_is_reported_not_raised() -> None:
    outbox = Outbox()
    [event] = outbox.commit(make_event())
    unreachable = RedisBroker(REDIS, history_size=10, history_ttl=60)  # never started
    with pytest.raises(Unavailable):
        await unreachable.publish(event)
    assert not await Publisher(unreachable, outbox).publish([event])
    assert outbox.published == set()
