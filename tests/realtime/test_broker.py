"""The broker contract, the same for the memory broker and Redis."""

from __future__ import annotations

import asyncio

from ordercast.events import ADMIN_CHANNEL, Position, customer_channel
from ordercast.realtime.broker import Broker, Placed, Reset, Resumed, create_broker
from ordercast.realtime.memory import MemoryBroker
from ordercast.realtime.redisbroker import RedisBroker
from tests.realtime.conftest import REDIS, Brokers, collect, make_event, wait_for


async def test_create_broker_chooses_by_url_scheme() -> None:
    assert isinstance(create_broker(None, history_size=10, history_ttl=60), MemoryBroker)
    assert isinstance(create_broker("memory://", history_size=10, history_ttl=60), MemoryBroker)
    assert isinstance(create_broker(REDIS, history_size=10, history_ttl=60), RedisBroker)
    assert isinstance(create_broker("unix:///run/redis.sock", history_size=10, history_ttl=60), RedisBroker)


async def test_offsets_are_contiguous_per_channel(broker: Broker) -> None:
    placed = [await broker.publish(make_event(customer_id="c1" if i % 2 else None)) for i in range(6)]
    admin = [positions[ADMIN_CHANNEL] for positions in placed]
    customer = [positions[customer_channel("c1")] for positions in placed if customer_channel("c1") in positions]
    assert [p.offset for p in admin] == [1, 2, 3, 4, 5, 6]
    assert [p.offset for p in customer] == [1, 2, 3]
    assert len({p.epoch for p in admin}) == 1
    assert await broker.current(ADMIN_CHANNEL) == admin[-1]
    assert await broker.current(customer_channel("c1")) == customer[-1]


async def test_an_unused_channel_is_at_offset_zero_of_the_epoch_it_will_use(broker: Broker) -> None:
    empty = await broker.current("customer:nobody")
    assert empty.offset == 0
    assert await broker.replay("customer:nobody", empty) == []
    placed = await broker.publish(make_event(customer_id="nobody"))
    assert placed["customer:nobody"] == Position(empty.epoch, 1)


async def test_publishing_an_event_twice_places_it_once(broker: Broker) -> None:
    event = make_event(customer_id="c1")
    first = await broker.publish(event)
    again = await broker.publish(event)
    assert again == first
    assert (await broker.current(ADMIN_CHANNEL)).offset == 1
    history = await broker.replay(ADMIN_CHANNEL, Position(first[ADMIN_CHANNEL].epoch, 0))
    assert isinstance(history, list)
    assert [e.id for _, e in history] == [event.id]


async def test_replay_returns_every_event_after_a_position_in_order(broker: Broker) -> None:
    events = [make_event(number=i) for i in range(5)]
    positions = [(await broker.publish(e))[ADMIN_CHANNEL] for e in events]
    replay = await broker.replay(ADMIN_CHANNEL, positions[1])
    assert isinstance(replay, list)
    assert [p for p, _ in replay] == positions[2:]
    assert [e.id for _, e in replay] == [e.id for e in events[2:]]
    assert replay[0][1].data == {"number": 2}
    assert replay[0][1].channels == (ADMIN_CHANNEL,)
    assert await broker.replay(ADMIN_CHANNEL, positions[-1]) == []


async def test_replay_resets_for_a_position_ahead_of_the_channel_or_of_another_epoch(broker: Broker) -> None:
    last = (await broker.publish(make_event()))[ADMIN_CHANNEL]
    assert await broker.replay(ADMIN_CHANNEL, Position(last.epoch, 2)) == Reset("invalid", last)
    assert await broker.replay(ADMIN_CHANNEL, Position("another", 1)) == Reset("epoch", last)


async def test_history_is_trimmed_by_count(brokers: Brokers) -> None:
    broker = await brokers.make(history_size=3)
    positions = [(await broker.publish(make_event()))[ADMIN_CHANNEL] for _ in range(5)]
    assert await broker.replay(ADMIN_CHANNEL, positions[0]) == Reset("expired", positions[-1])
    replay = await broker.replay(ADMIN_CHANNEL, positions[1])
    assert isinstance(replay, list)
    assert [p for p, _ in replay] == positions[2:]


async def test_history_is_trimmed_by_age(brokers: Brokers) -> None:
    broker = await brokers.make(history_ttl=0.3)
    first = (await broker.publish(make_event()))[ADMIN_CHANNEL]
    start = Position(first.epoch, 0)
    assert isinstance(await broker.replay(ADMIN_CHANNEL, start), list)

    async def expired() -> bool:
        return await broker.replay(ADMIN_CHANNEL, start) == Reset("expired", first)

    await wait_for(expired, message="the event to age out")
    second = (await broker.publish(make_event()))[ADMIN_CHANNEL]
    replay = await broker.replay(ADMIN_CHANNEL, first)
    assert isinstance(replay, list)
    assert [p for p, _ in replay] == [second]


async def test_a_broker_that_lost_its_history_starts_a_new_epoch(brokers: Brokers) -> None:
    old = (await (await brokers.make()).publish(make_event()))[ADMIN_CHANNEL]
    await brokers.lose_data()
    broker = await brokers.make()
    current = await broker.current(ADMIN_CHANNEL)
    assert current.epoch != old.epoch
    assert current.offset == 0
    assert await broker.replay(ADMIN_CHANNEL, old) == Reset("epoch", current)
    assert (await broker.publish(make_event()))[ADMIN_CHANNEL] == Position(current.epoch, 1)


async def test_the_feed_delivers_every_placed_event_in_each_channel(broker: Broker) -> None:
    feed = broker.feed()
    try:
        assert await asyncio.wait_for(anext(feed), 5) == Resumed()
        events = [make_event(customer_id="c1"), make_event()]
        placed = [await broker.publish(e) for e in events]
        await broker.publish(events[0])  # again: not placed, not fed again
        third = make_event()
        placed.append(await broker.publish(third))
        items = await collect(feed, 4)
        assert all(isinstance(item, Placed) for item in items)
        seen = [(i.channel, i.position, i.event.id) for i in items if isinstance(i, Placed)]
        expected = [
            (channel, position, event.id)
            for event, positions in zip([*events, third], placed, strict=True)
            for channel, position in positions.items()
        ]
        assert seen == expected
    finally:
        await feed.aclose()


async def test_the_feed_says_resumed_after_an_interruption(brokers: Brokers) -> None:
    broker = await brokers.make(small_feed=True)
    feed = broker.feed()
    try:
        assert await asyncio.wait_for(anext(feed), 5) == Resumed()
        await brokers.interrupt_feed()
        for _ in range(10):
            await broker.publish(make_event())
        items: list[object] = []

        async def resumed() -> bool:
            items.append(await asyncio.wait_for(anext(feed), 5))
            return isinstance(items[-1], Resumed)

        while not await resumed():
            pass
        # Nothing placed before the interruption's end was delivered twice or out of order.
        offsets = [i.position.offset for i in items if isinstance(i, Placed)]
        assert offsets == sorted(set(offsets))
        await broker.publish(make_event())
        after = await collect(feed, 1)
        assert isinstance(after[0], Placed)
        assert after[0].position.offset == 11
    finally:
        await feed.aclose()


async def test_prune_keeps_the_history_of_channels_with_recent_events(broker: Broker) -> None:
    first = (await broker.publish(make_event()))[ADMIN_CHANNEL]
    second = make_event()
    placed = (await broker.publish(second))[ADMIN_CHANNEL]
    assert await broker.prune() == 0
    assert await broker.replay(ADMIN_CHANNEL, first) == [(placed, second)]
