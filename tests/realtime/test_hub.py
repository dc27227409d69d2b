"""The hub: replay then live with no duplicate and no gap, resets, overflow, recovery after a lost feed."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import orjson
import pytest

from ordercast.errors import Unavailable
from ordercast.events import ADMIN_CHANNEL, Position, customer_channel
from ordercast.realtime.broker import Broker
from ordercast.realtime.hub import Hub, Message, Subscription
from ordercast.realtime.redisbroker import RedisBroker
from tests.realtime.conftest import Brokers, collect, make_event, private_redis


def offsets(messages: list[Message]) -> list[int]:
    return [m.position.offset for m in messages]


async def read_until(subscription: Subscription, offset: int, timeout: float = 10) -> list[Message]:
    """Messages up to and including the one at `offset`."""
    messages: list[Message] = []

    async def read() -> None:
        async for message in subscription:
            messages.append(message)
            if message.position.offset >= offset:
                return

    await asyncio.wait_for(read(), timeout)
    return messages


async def test_messages_are_encoded_for_sse_and_websocket_once() -> None:
    event = make_event(number=1)
    message = Message(Position("ep", 7), event)
    assert message.sse == b"id: ep:7\nevent: order.created\ndata: " + event.encode() + b"\n\n"
    assert message.sse is message.sse
    assert orjson.loads(message.ws) == {"id": "ep:7", "type": "order.created", "data": orjson.loads(event.encode())}
    reset = Message(Position("ep", 7), reason="expired")
    assert reset.sse == b'id: ep:7\nevent: reset\ndata: {"reason":"expired","position":"ep:7"}\n\n'
    assert orjson.loads(reset.ws) == {"id": "ep:7", "type": "reset", "data": {"reason": "expired", "position": "ep:7"}}


async def test_without_an_id_a_subscription_gets_live_events_from_now(broker: Broker, hub: Hub) -> None:
    await broker.publish(make_event())
    async with hub.subscribe(ADMIN_CHANNEL) as subscription:
        events = [make_event(number=i) for i in range(3)]
        for event in events:
            await broker.publish(event)
        messages = await collect(subscription, 3)
    assert [m.event.id for m in messages if m.event] == [e.id for e in events]
    assert offsets(messages) == [2, 3, 4]


async def test_every_subscriber_of_a_channel_gets_the_same_message_encoded_once(broker: Broker, hub: Hub) -> None:
    async with hub.subscribe(ADMIN_CHANNEL) as a, hub.subscribe(ADMIN_CHANNEL) as b, hub.subscribe("other") as c:
        await broker.publish(make_event())
        [first], [second] = await collect(a, 1), await collect(b, 1)
        assert first is second
        assert await c.next_batch(max_wait=0.05) == []
        assert hub.connections == 3
    assert hub.connections == 0


async def test_reconnect_with_last_event_id_replays_missed_events_then_live_ones(broker: Broker, hub: Hub) -> None:
    positions = [(await broker.publish(make_event(customer_id="c1")))[ADMIN_CHANNEL] for _ in range(5)]
    async with hub.subscribe(ADMIN_CHANNEL, str(positions[1])) as subscription:
        await broker.publish(make_event())
        messages = await collect(subscription, 4)
    assert offsets(messages) == [3, 4, 5, 6]
    assert [m.position for m in messages[:3]] == positions[2:]
    assert all(m.type == "order.created" for m in messages)


@pytest.mark.parametrize(
    ("make_id", "reason"),
    [
        (lambda p: "garbage", "invalid"),
        (lambda p: "x:" + "9" * 200, "invalid"),
        (lambda p: f"{p.epoch}:{p.offset + 5}", "invalid"),
        (lambda p: f"another-epoch:{p.offset}", "epoch"),
    ],
)
async def test_an_id_history_cannot_answer_gets_a_reset_then_live_events(
    broker: Broker, hub: Hub, make_id: Callable[[Position], str], reason: str
) -> None:
    await broker.publish(make_event())
    current = (await broker.publish(make_event()))[ADMIN_CHANNEL]
    async with hub.subscribe(ADMIN_CHANNEL, make_id(current)) as subscription:
        await broker.publish(make_event())
        reset, live = await collect(subscription, 2)
    assert (reset.type, reset.reason, reset.position) == ("reset", reason, current)
    assert live.position == Position(current.epoch, current.offset + 1)


async def test_an_id_older_than_history_gets_a_reset_expired(brokers: Brokers) -> None:
    broker = await brokers.make(history_size=2)
    positions = [(await broker.publish(make_event()))[ADMIN_CHANNEL] for _ in range(4)]
    async with Hub(broker) as hub, hub.subscribe(ADMIN_CHANNEL, str(positions[0])) as subscription:
        [reset] = await collect(subscription, 1)
        assert (reset.type, reset.reason, reset.position) == ("reset", "expired", positions[-1])
        async with hub.subscribe(ADMIN_CHANNEL, str(positions[1])) as recent:
            assert offsets(await collect(recent, 2)) == [3, 4]


async def test_the_seam_has_no_duplicate_and_no_gap_under_concurrent_publishing(broker: Broker, hub: Hub) -> None:
    publishers, each, total = 4, 50, 200
    placed: dict[int, str] = {}  # offset → event id
    epoch = (await broker.current(ADMIN_CHANNEL)).epoch
    # Once `after` events are out, a subscriber joins (in its own task) resuming from `resume_from`
    # (None: no id), while the publishers go on.
    plans: dict[int, int | None] = {1: 0, 20: 5, 60: 55, 100: None, 150: 149, 180: 100}
    joiners: dict[int, asyncio.Task[list[Message]]] = {}

    async def join(resume_from: int | None) -> list[Message]:
        last_id = str(Position(epoch, resume_from)) if resume_from is not None else None
        async with hub.subscribe(ADMIN_CHANNEL, last_id) as subscription:
            return await read_until(subscription, total)

    async def publish(count: int) -> None:
        for _ in range(count):
            event = make_event()
            placed[(await broker.publish(event))[ADMIN_CHANNEL].offset] = event.id
            for after, resume_from in plans.items():
                if len(placed) >= after and after not in joiners:
                    joiners[after] = asyncio.create_task(join(resume_from))
            await asyncio.sleep(0)  # a yield: seams run between publishes

    await asyncio.gather(*(publish(each) for _ in range(publishers)))
    for after, resume_from in plans.items():
        messages = await joiners[after]
        first = resume_from + 1 if resume_from is not None else messages[0].position.offset
        assert first > after or resume_from is not None
        assert offsets(messages) == list(range(first, total + 1)), (resume_from, offsets(messages)[:10])
        assert [m.event.id for m in messages if m.event] == [placed[offset] for offset in range(first, total + 1)]


async def test_a_full_queue_closes_only_that_subscription(broker: Broker) -> None:
    async with (
        Hub(broker, queue_size=5) as hub,
        hub.subscribe(ADMIN_CHANNEL) as slow,
        hub.subscribe(ADMIN_CHANNEL) as fast,
    ):
        received: list[Message] = []
        for _ in range(20):
            await broker.publish(make_event())
            received += await fast.next_batch(max_wait=5)
        assert slow.closed
        assert slow.close_reason == "overflow"
        assert [m async for m in slow] == []
        assert not fast.closed
        assert offsets(received) == list(range(1, 21))
        assert hub.overflows == 1


async def test_events_lost_by_an_interrupted_feed_are_filled_from_history(brokers: Brokers) -> None:
    broker = await brokers.make(small_feed=True)
    customer = customer_channel("c1")
    async with Hub(broker) as hub, hub.subscribe(ADMIN_CHANNEL) as admin, hub.subscribe(customer) as mine:
        await broker.publish(make_event(customer_id="c1"))
        assert offsets(await collect(admin, 1)) == [1]
        recoveries = hub.recoveries
        await brokers.interrupt_feed()
        for _ in range(10):
            await broker.publish(make_event(customer_id="c1"))
        if brokers.kind == "redis":
            assert await brokers.feed_subscribers() == 0, "the burst must be published while the feed is down"
        received = [1, *offsets(await collect(admin, 10))]
        assert received == list(range(1, 12))
        assert offsets(await collect(mine, 11)) == list(range(1, 12))
        assert hub.recoveries > recoveries
        await broker.publish(make_event())
        assert offsets(await collect(admin, 1)) == [12]


async def test_close_ends_every_subscription_and_refuses_new_ones(broker: Broker) -> None:
    hub = Hub(broker)
    await hub.start()
    assert hub.ready
    async with hub.subscribe(ADMIN_CHANNEL) as subscription:
        waiting = asyncio.create_task(subscription.next_batch())
        await asyncio.sleep(0)
        await hub.close()
        assert await asyncio.wait_for(waiting, 1) == []
        assert subscription.close_reason == "shutdown"
    assert not hub.ready
    with pytest.raises(Unavailable):
        async with hub.subscribe(ADMIN_CHANNEL):
            pass


async def test_after_redis_lost_its_data_live_subscribers_get_a_reset_to_the_new_epoch() -> None:
    async with private_redis() as redis:
        broker = RedisBroker(
            redis.url, history_size=100, history_ttl=60, timeout=1, reconnect_base=0.05, reconnect_cap=0.2
        )
        async with broker, Hub(broker) as hub, hub.subscribe(ADMIN_CHANNEL) as subscription:
            old = (await broker.publish(make_event()))[ADMIN_CHANNEL]
            assert offsets(await collect(subscription, 1)) == [1]
            await redis.restart()
            [reset] = await collect(subscription, 1, timeout=10)
            assert (reset.type, reset.reason) == ("reset", "epoch")
            assert reset.position.epoch != old.epoch
            placed = (await broker.publish(make_event()))[ADMIN_CHANNEL]
            assert placed == Position(reset.position.epoch, reset.position.offset + 1)
            [live] = await collect(subscription, 1)
            assert live.position == placed


async def test_a_waiting_consumers_sink_takes_messages_in_order_until_it_declines_one(broker: Broker, hub: Hub) -> None:
    answers = [True, True, False, True]  # the third is declined: it and every later one queue
    taken: list[Message] = []

    def sink(message: Message) -> bool:
        if answers.pop(0):
            taken.append(message)
            return True
        return False

    async with hub.subscribe(ADMIN_CHANNEL) as subscription:
        waiting = asyncio.create_task(subscription.next_batch(None, 10, sink=sink))
        events = [make_event(number=i) for i in range(4)]
        for event in events:
            await broker.publish(event)
        batch = await asyncio.wait_for(waiting, 10)
        while len(taken) + len(batch) < 4:
            batch += await asyncio.wait_for(subscription.next_batch(None, 10), 10)
    assert [m.event.id for m in taken if m.event] == [e.id for e in events[:2]]
    assert [m.event.id for m in batch if m.event] == [e.id for e in events[2:]]
    assert answers == [True]  # never asked again once it declined, until the next wait
