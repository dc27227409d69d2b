"""Senders in other processes: woken by an event another process committed, and, running all along,
taking over the leased deliveries of a process killed with -9 (only the message in flight at the kill
may be sent twice).

Its own module: the servers of test_multiprocess (same database) are stopped by then, so none of
them claims these deliveries for another fake Bot API. Webhook mode, so no polling lock is involved.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Callable
from typing import Any

import asyncpg
import httpx

from tests.bot.conftest import AUTH, STEPS, BotEnv, bot_ready, bot_servers, bot_settings, stop
from tests.bot.fakebot import FakeBotAPI, running
from tests.bot.test_multiprocess import status_of
from tests.conftest import ServerProcess, Stack, new_order, wait_for

DOOMED_LEASE = 15


async def test_a_running_sender_takes_over_the_leases_of_a_process_killed_with_9(
    start_pg_server: Callable[..., Any], postgres_stack: Stack
) -> None:
    held_chats, waiting_chats = 2, 2
    async with running(FakeBotAPI()) as fake:
        # Both in webhook mode (the pair above still holds the polling lock), on one PostgreSQL and
        # Redis. The doomed one sends one message per 2 s per chat: after each send the chat's next
        # one is claimed and waits for its slot, leased. Its leases run out DOOMED_LEASE s after a claim:
        # room for that wait and a send (its timeout, 10 s), or the message would go back to the queue
        # to wait there.
        doomed: ServerProcess = await start_pg_server(
            **bot_settings(
                fake,
                "webhook",
                telegram_rate_chat=0.5,
                delivery_lease=DOOMED_LEASE,
                delivery_concurrency=held_chats + waiting_chats,
            )
        )
        survivor: ServerProcess | None = None
        try:
            await wait_for(lambda: _webhook_of(fake, doomed), message="the doomed process's webhook")
            # The survivor sends one message at a time (so one held send stops its sender), its leases
            # are long (which tells its rows from the doomed's in the database), and its claim timer
            # (0.2 s) is what must find the leases that ran out: after the kill nothing else wakes it.
            # It answers the webhook, so the greetings don't hold the chats' first status messages
            # back for the doomed process's 2 s.
            survivor = await start_pg_server(
                **bot_settings(fake, "webhook", delivery_concurrency=1, delivery_lease=60, delivery_claim_interval=0.2)
            )
            await wait_for(lambda: _webhook_of(fake, survivor), message="the survivor's webhook")
            async with httpx.AsyncClient(base_url=survivor.base_url, headers=AUTH, timeout=10) as client:
                env = BotEnv(fake, survivor, client, "webhook")

                # Both senders are awake for every chat from the start, and either may claim a delivery
                # (the survivor took 4 of 5 with more room). So first fill the survivor's one slot: one
                # held send more than the doomed process may have in flight takes every slot of both,
                # the survivor's with exactly one of them (its long lease tells which). Then let the
                # doomed process's go: until the kill, only its sender can claim.
                linked = [await env.link() for _ in range(held_chats + waiting_chats + 1)]
                pins = [chat for chat, _ in linked]
                for chat, customer in linked:
                    fake.hold(chat)
                    await env.change(await new_order(client, customer["id"]), "paid")
                await wait_for(lambda: set(fake.holding) >= set(pins), message="every pin held")
                leases = await _leases(postgres_stack, pins)
                survivors_pin = [chat for chat, left in leases.items() if left > DOOMED_LEASE]
                assert len(leases) == len(pins)
                assert len(survivors_pin) == 1, leases
                for chat in pins:
                    if chat not in survivors_pin:
                        fake.release(chat)
                await wait_for(
                    lambda: _all_sent(postgres_stack, [c for c in pins if c not in survivors_pin]),
                    message="the doomed process's pins sent",
                )

                # Now only the doomed process's sender can take these chats' deliveries.
                held = [await env.link() for _ in range(held_chats)]  # their first message is in flight at the kill
                waiting = [await env.link() for _ in range(waiting_chats)]  # their second is leased, not yet sent
                for chat, _ in held:
                    fake.hold(chat)
                orders = {}
                for chat, customer in held + waiting:
                    orders[chat] = order = await new_order(client, customer["id"])
                    for status in STEPS[:3]:
                        await env.change(order, status)
                await wait_for(lambda: set(fake.holding) >= {chat for chat, _ in held}, message="held sends")
                for chat, _ in waiting:
                    await fake.wait_messages(chat, 2)

                async def second_leased(chat: int) -> bool:
                    rows = await env.deliveries(order_id=orders[chat]["id"])
                    return [row["status"] for row in reversed(rows)][:2] == ["sent", "sending"]

                for chat, _ in waiting:
                    await wait_for(lambda chat=chat: second_leased(chat), message="the second delivery leased")
                # Every chat's head is leased, and by the doomed process (its short lease).
                leases = await _leases(postgres_stack, list(orders))
                assert set(leases) == set(orders), leases
                assert all(left <= DOOMED_LEASE for left in leases.values()), leases

                assert doomed.process is not None
                doomed.process.send_signal(signal.SIGKILL)
                await asyncio.to_thread(doomed.process.wait, 10)
                # The leased second messages had not gone out when it died.
                assert [len(fake.messages(chat)) for chat, _ in waiting] == [2] * waiting_chats
                for chat in [*survivors_pin, *(chat for chat, _ in held)]:
                    fake.release(chat)

                for chat, _ in held:
                    # The greeting, the in-flight one twice, two more.
                    await fake.wait_messages(chat, 1 + 4, timeout=DOOMED_LEASE + 10)
                for chat, _ in waiting:
                    await fake.wait_messages(chat, 1 + 3, timeout=DOOMED_LEASE + 10)
                await wait_for(lambda: _all_sent(postgres_stack, [*pins, *orders]), message="deliveries recorded")
                for chat in orders:
                    received = [status_of(message.text)[1] for message in fake.messages(chat)[1:]]
                    if chat in dict(held):
                        # At most the one message in flight at the kill is sent twice.
                        assert received == ["paid", "paid", "accepted", "packing"]
                    else:
                        assert received == ["paid", "accepted", "packing"]
                for chat in pins:
                    assert [status_of(message.text)[1] for message in fake.messages(chat)[1:]] == ["paid"]
        finally:
            await stop(doomed, signal.SIGKILL)
            if survivor is not None:
                await stop(survivor)


def _webhook_of(fake: FakeBotAPI, server: ServerProcess) -> bool:
    return fake.webhook is not None and str(fake.webhook["url"]).startswith(server.base_url + "/")


async def _deliveries_to(stack: Stack, chats: list[int], condition: str) -> list[asyncpg.Record]:
    """The Telegram deliveries to these chats matching `condition` (SQL), with their lease's seconds left."""
    conn = await asyncpg.connect(stack.database_url.replace("postgres://", "postgresql://", 1))
    try:
        return await conn.fetch(
            "SELECT recipient, EXTRACT(EPOCH FROM lease_until - now()) AS left FROM deliveries"
            f" WHERE channel = 'telegram' AND {condition} AND recipient = ANY($1::text[])",
            [str(chat) for chat in chats],
        )
    finally:
        await conn.close()


async def _leases(stack: Stack, chats: list[int]) -> dict[int, float]:
    """Seconds left on the lease of each chat's `sending` Telegram delivery."""
    rows = await _deliveries_to(stack, chats, "status = 'sending'")
    return {int(row["recipient"]): float(row["left"]) for row in rows}


async def _all_sent(stack: Stack, chats: list[int]) -> bool:
    """Whether every Telegram delivery to these chats is recorded as sent."""
    return not await _deliveries_to(stack, chats, "status <> 'sent'")


async def test_senders_are_woken_by_events_committed_in_another_process(start_pg_server: Callable[..., Any]) -> None:
    async with running(FakeBotAPI()) as fake:
        # The sender's timer is far off: only the event (through Redis and the hub) can wake it in time.
        sender: ServerProcess = await start_pg_server(**bot_settings(fake, "webhook", delivery_claim_interval=60))
        api: ServerProcess = await start_pg_server()  # the bot is off here: it only commits
        try:
            await bot_ready(fake, "webhook")
            async with (
                httpx.AsyncClient(base_url=sender.base_url, headers=AUTH, timeout=10) as on_sender,
                httpx.AsyncClient(base_url=api.base_url, headers=AUTH, timeout=10) as on_api,
            ):
                chat, customer = await BotEnv(fake, sender, on_sender, "webhook").link()
                order = await new_order(on_api, customer["id"])
                elsewhere = BotEnv(fake, api, on_api, "webhook")
                for status in STEPS[:2]:
                    await elsewhere.change(order, status)
                messages = await fake.wait_messages(chat, 3, timeout=10)
                assert [status_of(message.text)[1] for message in messages[1:]] == STEPS[:2]
        finally:
            await stop(api)
            await stop(sender)


async def test_two_processes_keep_within_telegrams_limits_together(start_pg_server: Callable[..., Any]) -> None:
    limits = {"telegram_rate_global": 20, "telegram_rate_chat": 4}
    async with (
        running(FakeBotAPI(enforce_limits=True, global_rate=20, chat_rate=4)) as fake,
        bot_servers(start_pg_server, fake, "webhook", **limits) as envs,
    ):
        chats = [await envs[n % 2].link() for n in range(6)]
        orders = [await new_order(envs[0].client, customer["id"]) for _, customer in chats]
        first = len(fake.sent)
        for step, status in enumerate(STEPS):
            await asyncio.gather(*(envs[(n + step) % 2].change(order, status) for n, order in enumerate(orders)))
        for chat, _ in chats:
            await fake.wait_messages(chat, 1 + len(STEPS), timeout=20)
        assert fake.throttled == 0  # the shared limits kept both processes under Telegram's
        burst = fake.sent[first:]
        assert len(burst) == 30
        assert burst[-1].at - burst[0].at >= (30 - 1) / 20 - 0.05
        for chat, _ in chats:
            times = [message.at for message in fake.messages(chat)[1:]]
            assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 1 / 4 - 0.05
