"""Senders in other processes: woken by an event another process committed, and taking over the
leased deliveries of a process killed with -9 (only the message in flight at the kill may be sent
twice).

Its own module: the servers of test_multiprocess (same database) are stopped by then, so none of
them claims these deliveries for another fake Bot API. Webhook mode, so no polling lock is involved.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Callable
from typing import Any

import httpx

from tests.bot.conftest import BotEnv, bot_ready, bot_settings
from tests.bot.fakebot import FakeBotAPI, running
from tests.bot.test_multiprocess import AUTH, STEPS, status_of, stop
from tests.conftest import ServerProcess, new_order, wait_for


async def test_a_killed_senders_leased_deliveries_are_sent_by_another_process(
    start_pg_server: Callable[..., Any],
) -> None:
    async with running(FakeBotAPI()) as fake:
        # Webhook mode: the pair above still holds the polling lock. One message per 2 s per chat:
        # after each send the next one is claimed and waits for its slot, leased.
        doomed: ServerProcess = await start_pg_server(
            **bot_settings(fake, "webhook", telegram_rate_chat=0.5, delivery_lease=2, delivery_claim_interval=0.2)
        )
        survivor: ServerProcess | None = None
        try:
            await bot_ready(fake, "webhook")
            async with httpx.AsyncClient(base_url=doomed.base_url, headers=AUTH, timeout=10) as client:
                env = BotEnv(fake, doomed, client, "webhook")
                held = [await env.link() for _ in range(2)]  # their first message is in flight at the kill
                waiting = [await env.link() for _ in range(2)]  # their second one is leased, not yet sent
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
            assert doomed.process is not None
            doomed.process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(doomed.process.wait, 10)
            for chat, _ in held:
                fake.release(chat)

            survivor = await start_pg_server(**bot_settings(fake, "webhook"))
            for chat, _ in held:
                await fake.wait_messages(chat, 1 + 4, timeout=20)  # greeting, the in-flight one twice, two more
            for chat, _ in waiting:
                await fake.wait_messages(chat, 1 + 3, timeout=20)
            async with httpx.AsyncClient(base_url=survivor.base_url, headers=AUTH, timeout=10) as client:
                env = BotEnv(fake, survivor, client, "webhook")
                for chat in orders:
                    await wait_for(
                        lambda chat=chat: _settled(env, orders[chat]), timeout=10, message="deliveries recorded"
                    )
                    received = [status_of(message.text)[1] for message in fake.messages(chat)[1:]]
                    if chat in dict(held):
                        # At most the one message in flight at the kill is sent twice.
                        assert received == ["paid", "paid", "accepted", "packing"]
                    else:
                        assert received == ["paid", "accepted", "packing"]
                    rows = list(reversed(await env.deliveries(order_id=orders[chat]["id"])))
                    assert [row["status"] for row in rows] == ["sent"] * 3
        finally:
            await stop(doomed, signal.SIGKILL)
            if survivor is not None:
                await stop(survivor)


async def _settled(env: BotEnv, order: dict[str, Any]) -> bool:
    rows = await env.deliveries(order_id=order["id"])
    return len(rows) == 3 and all(row["status"] == "sent" for row in rows)


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
    async with running(FakeBotAPI(enforce_limits=True, global_rate=20, chat_rate=4)) as fake:
        servers = [await start_pg_server(**bot_settings(fake, "webhook", **limits)) for _ in range(2)]
        try:
            await bot_ready(fake, "webhook")
            async with (
                httpx.AsyncClient(base_url=servers[0].base_url, headers=AUTH, timeout=10) as a,
                httpx.AsyncClient(base_url=servers[1].base_url, headers=AUTH, timeout=10) as b,
            ):
                envs = [BotEnv(fake, servers[0], a, "webhook"), BotEnv(fake, servers[1], b, "webhook")]
                chats = [await envs[n % 2].link() for n in range(6)]
                orders = [await new_order(a, customer["id"]) for _, customer in chats]
                first = len(fake.sent)
                for step, status in enumerate(STEPS):
                    await asyncio.gather(
                        *(envs[(n + step) % 2].change(order, status) for n, order in enumerate(orders))
                    )
                for chat, _ in chats:
                    await fake.wait_messages(chat, 1 + len(STEPS), timeout=20)
            assert fake.throttled == 0  # the shared limits kept both processes under Telegram's
            burst = fake.sent[first:]
            assert len(burst) == 30
            assert burst[-1].at - burst[0].at >= (30 - 1) / 20 - 0.05
            for chat, _ in chats:
                times = [message.at for message in fake.messages(chat)[1:]]
                assert min(later - earlier for earlier, later in itertools.pairwise(times)) >= 1 / 4 - 0.05
        finally:
            for server in servers:
                await stop(server)
