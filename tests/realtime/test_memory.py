"""The memory broker keeps history only for channels with a recent event: `prune()` drops the quiet ones."""

from __future__ import annotations

from dataclasses import dataclass

from ordercast.events import ADMIN_CHANNEL, Position, customer_channel
from ordercast.realtime.broker import Reset
from ordercast.realtime.hub import Hub
from ordercast.realtime.memory import MemoryBroker
from tests.realtime.conftest import collect, make_app, make_event, serve, wait_for
from tests.realtime.test_sse import sse

TTL = 10.0
QUIET, BUSY = customer_channel("quiet"), customer_channel("busy")


@dataclass
class Clock:
    """The broker's clock, moved by the test: the TTL passes without waiting for it."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_prune_drops_a_quiet_channels_history_and_keeps_a_busy_ones_recent_events() -> None:
    clock = Clock()
    broker = MemoryBroker(history_size=100, history_ttl=TTL, clock=clock)
    quiet = (await broker.publish(make_event(customer_id="quiet")))[QUIET]
    old_busy = (await broker.publish(make_event(customer_id="busy")))[BUSY]
    clock.now += TTL - 2
    recent = make_event(customer_id="busy")
    recent_positions = await broker.publish(recent)
    recent_busy, recent_admin = recent_positions[BUSY], recent_positions[ADMIN_CHANNEL]
    clock.now += 3  # the quiet channel's one event, and the busy one's first, are now older than the TTL

    assert await broker.prune() == 1
    assert await broker.prune() == 0
    # The busy channel keeps what is younger than the TTL (and so does the admin channel).
    assert await broker.replay(BUSY, old_busy) == [(recent_busy, recent)]
    assert await broker.replay(BUSY, Position(old_busy.epoch, 0)) == Reset("expired", recent_busy)
    assert await broker.replay(ADMIN_CHANNEL, Position(recent_admin.epoch, 2)) == [(recent_admin, recent)]
    # The quiet channel is gone: it starts again in a new epoch, and its old positions get a reset.
    now = await broker.current(QUIET)
    assert now.offset == 0
    assert now.epoch != quiet.epoch
    assert await broker.replay(QUIET, quiet) == Reset("expired", now)
    placed = (await broker.publish(make_event(customer_id="quiet")))[QUIET]
    assert placed == Position(now.epoch, 1)
    assert await broker.replay(QUIET, Position(quiet.epoch, 0)) == Reset("expired", placed)
    # Another broker's epoch is still told apart from a dropped channel's.
    assert await broker.replay(QUIET, Position("elsewhere", 1)) == Reset("epoch", placed)


async def test_a_client_resuming_from_a_dropped_channel_gets_a_reset_then_live_events() -> None:
    clock = Clock()
    broker = MemoryBroker(history_size=100, history_ttl=TTL, clock=clock)
    last_seen = (await broker.publish(make_event(customer_id="quiet")))[QUIET]
    clock.now += TTL + 1
    assert await broker.prune() == 2  # the customer's channel and the admin channel
    async with Hub(broker) as hub, serve(make_app(hub)) as (url, _):
        headers = {"Last-Event-ID": str(last_seen)}
        async with sse(url, params={"token": "customer-quiet"}, headers=headers) as stream:
            await wait_for(lambda: stream.messages, message="the reset")
            [reset] = stream.messages
            assert reset["event"] == "reset"
            assert reset["data"] == f'{{"reason":"expired","position":"{await broker.current(QUIET)}"}}'
            live = (await broker.publish(make_event(customer_id="quiet")))[QUIET]
            await wait_for(lambda: len(stream.messages) == 2, message="a live event after the reset")
            assert stream.messages[1]["id"] == str(live)


async def test_a_live_subscriber_of_a_channel_dropped_under_it_gets_a_reset() -> None:
    clock = Clock()
    broker = MemoryBroker(history_size=100, history_ttl=TTL, clock=clock)
    async with Hub(broker) as hub, hub.subscribe(QUIET) as subscription:
        await broker.publish(make_event(customer_id="quiet"))
        [first] = await collect(subscription, 1)
        clock.now += TTL + 1
        assert await broker.prune() == 2  # the admin channel was as quiet
        placed = (await broker.publish(make_event(customer_id="quiet")))[QUIET]
        [reset] = await collect(subscription, 1)
    assert (reset.type, reset.reason, reset.position) == ("reset", "expired", placed)
    assert reset.position.epoch != first.position.epoch
