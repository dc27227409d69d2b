"""Telegram status messages through the delivery queue, against a fake Bot API enforcing Telegram's limits.

Starts `ordercast serve` (by default two processes on PostgreSQL and Redis, as production would run)
with the bot polling the fake Bot API of the test suite (tests/bot/fakebot.py), run in this process
with flood control on: 30 messages/s per bot and 1 message/s per chat, 50 ms of jitter allowed,
anything faster answered 429 with `retry_after`. The servers run with their default delivery and
rate-limit settings. Then:

1. **drain**: `--chats` linked chats (default 200), one order each, `--changes` status changes
   (default 1,000: 5 per order) sent round-robin as fast as the API takes them. Drain time runs from
   the first change's commit to the last message the fake accepted; the limit-bound minimum is
   `(changes - 1) / 30` s (the bot-wide limit; 5 messages per chat at 1/s is not the binding one).
   Target: within 10 % of it.
2. **latency**: new orders, changes at `--rate`/s (default 10) round-robin over the chats for
   `--duration` s (each chat gets one message every 20 s: under both limits). Latency from the
   event's `occurred_at` (its commit) to the fake accepting the message, p50/p99. Target: p99 ≤ 1 s.

A measurement, not a test: exits 0 whatever the figures, non-zero only when the bench itself fails.

    .venv/bin/python bench/telegram.py [--stack postgres|sqlite] [--processes 2] [--chats 200]
    .venv/bin/python bench/telegram.py --api-bench [bench/api.py's options]   # api.py, customers linked

`--api-bench` runs bench/api.py with every customer of its load generator linked to a chat on the fake
Bot API (limits on) and the bot polling it: each status change then also writes a Telegram delivery
in its transaction, and the server sends them (at most 30/s, so most wait in the queue).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import secrets
import signal
import socket
import statistics
import sys
import tempfile
import time
from asyncio.subprocess import PIPE, STDOUT
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import httpx  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from ordercast.events import parse_time  # noqa: E402
from tests.bot.fakebot import TOKEN, FakeBotAPI, running  # noqa: E402

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
STEPS = ["paid", "accepted", "packing", "dispatched", "delivered"]
GLOBAL_RATE = 30.0
CHAT_RATE = 1.0


class BenchFailure(Exception):
    """The bench could not measure."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(condition: Any, within: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise BenchFailure(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


@dataclass
class Server:
    process: asyncio.subprocess.Process
    url: str
    log: Path


@contextlib.asynccontextmanager
async def stack(kind: str) -> AsyncIterator[dict[str, str]]:
    """A fresh database (and Redis prefix), removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ordercast-bench-tg-") as directory:
            yield {"ORDERCAST_DATABASE_URL": f"sqlite://{directory}/bench.db"}
        return
    name = f"ordercast_bench_tg_{secrets.token_hex(4)}"
    prefix = f"bench-tg:{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    try:
        yield {
            "ORDERCAST_DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{name}",
            "ORDERCAST_REDIS_URL": REDIS_URL,
            "ORDERCAST_REDIS_PREFIX": prefix,
        }
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        redis = Redis.from_url(REDIS_URL)
        keys = [key async for key in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()


@contextlib.asynccontextmanager
async def servers(env: dict[str, str], count: int, api_key: str, fake: FakeBotAPI) -> AsyncIterator[list[Server]]:
    base = {
        **os.environ,
        **env,
        "ORDERCAST_API_KEYS": api_key,
        "ORDERCAST_TELEGRAM_TOKEN": TOKEN,
        "ORDERCAST_TELEGRAM_MODE": "polling",
        "ORDERCAST_TELEGRAM_API_URL": fake.url,
        "ORDERCAST_LOG_LEVEL": "warning",
    }
    migrate = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "ordercast", "migrate", env=base, cwd=ROOT, stdout=PIPE, stderr=STDOUT
    )
    output, _ = await migrate.communicate()
    if migrate.returncode:
        raise BenchFailure(f"migrate failed: {output.decode()[-2000:]}")
    started: list[Server] = []
    logs = Path(tempfile.mkdtemp(prefix="ordercast-bench-tg-logs-"))
    try:
        for index in range(count):
            port = free_port()
            log = logs / f"server-{index}.log"
            with log.open("wb") as output_file:
                process = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "ordercast",
                    "serve",
                    env={**base, "ORDERCAST_PORT": str(port)},
                    cwd=ROOT,
                    stdout=output_file,
                    stderr=STDOUT,
                )
            started.append(Server(process, f"http://127.0.0.1:{port}", log))
        async with httpx.AsyncClient(timeout=2) as client:
            for server in started:

                async def ready(server: Server = server) -> bool:
                    if server.process.returncode is not None:
                        raise BenchFailure(f"a server exited: {server.log.read_text()[-3000:]}")
                    try:
                        return (await client.get(f"{server.url}/readyz")).status_code == 200
                    except httpx.HTTPError:
                        return False

                await until(ready, 60, "the servers to be ready")
        yield started
    finally:
        for server in started:
            if server.process.returncode is None:
                server.process.send_signal(signal.SIGTERM)
        for server in started:
            try:
                await asyncio.wait_for(server.process.wait(), 15)
            except TimeoutError:
                server.process.kill()
                await server.process.wait()
        for server in started:
            errors = [line for line in server.log.read_text(errors="replace").splitlines() if "ERROR" in line]
            if errors:
                print(f"  {server.log}: {len(errors)} error line(s), first: {errors[0][:200]}", file=sys.stderr)


def refusals(fake: FakeBotAPI, before: dict[str, int]) -> str:
    bot = fake.flood_control.refused["bot"] - before["bot"]
    chat = fake.flood_control.refused["chat"] - before["chat"]
    return f"{bot + chat} ({bot} bot-wide, {chat} per chat)"


def percentile(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(percent / 100 * len(ordered)) - 1))]


async def run(options: argparse.Namespace) -> None:
    api_key = "ock_bench_" + secrets.token_urlsafe(16)
    fake = FakeBotAPI(enforce_limits=True, global_rate=GLOBAL_RATE, chat_rate=CHAT_RATE, tolerance=0.05)
    processes = options.processes or (2 if options.stack == "postgres" else 1)
    async with running(fake), stack(options.stack) as env, servers(env, processes, api_key, fake) as started:
        await until(lambda: fake.commands is not None and fake.called("getUpdates"), 30, "the bot to start")
        clients = [
            httpx.AsyncClient(
                base_url=server.url,
                headers={"Authorization": f"Bearer {api_key}"},
                timeout=30,
                limits=httpx.Limits(max_connections=16),
            )
            for server in started
        ]
        try:
            await measure(options, fake, clients, processes)
        finally:
            for client in clients:
                await client.aclose()


async def measure(
    options: argparse.Namespace, fake: FakeBotAPI, clients: list[httpx.AsyncClient], processes: int
) -> None:
    print(
        f"ordercast Telegram bench: {options.stack}, {processes} process(es), {options.chats} chats; "
        f"fake Bot API limits {GLOBAL_RATE:.0f} msg/s per bot, {CHAT_RATE:.0f}/s per chat"
    )
    chats = list(range(10**9, 10**9 + options.chats))
    customers: dict[int, str] = {}
    gate = asyncio.Semaphore(16)

    async def link(index: int, chat: int) -> None:
        client = clients[index % len(clients)]
        async with gate:
            body = {"external_id": f"bench-{chat}", "name": f"Customer {chat}"}
            customer = (await client.post("/api/v1/customers", json=body)).json()
            token = (await client.post(f"/api/v1/customers/{customer['id']}/telegram-link")).json()["token"]
        customers[chat] = customer["id"]
        await fake.say(chat, f"/start {token}")

    started = time.monotonic()
    await asyncio.gather(*(link(index, chat) for index, chat in enumerate(chats)))
    await until(lambda: all(fake.messages(chat) for chat in chats), 120, "every chat's greeting")
    print(f"  linked {len(chats)} chats in {time.monotonic() - started:.1f} s (greetings share the limits)")
    # Let each chat's slot after its greeting pass, so the drain starts from idle limits.
    await asyncio.sleep(1.2)

    # Phase 1: drain.
    orders = await new_orders(clients, customers, chats, gate)
    per_chat_changes = options.changes // len(chats)
    steps = STEPS[:per_chat_changes]
    total = len(steps) * len(chats)
    baseline = {chat: len(fake.messages(chat)) for chat in chats}
    refused_before = dict(fake.flood_control.refused)
    commits: list[float] = []
    issued = time.monotonic()
    for step in steps:
        await asyncio.gather(
            *(change(clients, index, orders[chat], step, gate, commits) for index, chat in enumerate(chats))
        )
    issue_time = time.monotonic() - issued

    def status_messages() -> int:
        return sum(len(fake.messages(chat)) - baseline[chat] for chat in chats)

    await until(lambda: status_messages() >= total, 300, f"{total} status messages", interval=0.2)
    last = max(message.wall for chat in chats for message in fake.messages(chat)[baseline[chat] :])
    first_commit = min(commits)
    drain = last - first_commit
    minimum = max((total - 1) / GLOBAL_RATE, (len(steps) - 1) / CHAT_RATE)
    in_order = all(
        [title_of(m.text) for m in fake.messages(chat)[baseline[chat] :]] == [TITLE[s] for s in steps] for chat in chats
    )
    print(
        f"  drain: {total} changes issued in {issue_time:.1f} s; last message {drain:.2f} s after the first commit; "
        f"limit-bound minimum {minimum:.2f} s → {drain / minimum * 100 - 100:+.1f} % (target ≤ +10 %)"
    )
    print(
        f"         messages {status_messages()} (expected {total}), in order per chat: {in_order}, "
        f"429s from the fake: {refusals(fake, refused_before)}"
    )

    # Phase 2: latency under the limits.
    orders = await new_orders(clients, customers, chats, gate, suffix="-2")
    await asyncio.sleep(1.2)
    count = int(options.rate * options.duration)
    plan = [(chats[n % len(chats)], STEPS[n // len(chats)]) for n in range(min(count, len(chats) * len(STEPS)))]
    baseline = {chat: len(fake.messages(chat)) for chat in chats}
    refused_before = dict(fake.flood_control.refused)
    sent_at: dict[tuple[str, str], float] = {}
    begin = time.monotonic()

    async def scheduled(n: int, chat: int, step: str) -> None:
        await asyncio.sleep(max(0.0, begin + n / options.rate - time.monotonic()))
        order = orders[chat]
        sent_at[(order["id"], step)] = time.time()
        await change(clients, n, order, step, None, [])

    await asyncio.gather(*(scheduled(n, chat, step) for n, (chat, step) in enumerate(plan)))
    await until(
        lambda: sum(len(fake.messages(chat)) - baseline[chat] for chat in chats) >= len(plan), 60, "the latency phase"
    )
    occurred: dict[tuple[str, str], float] = {}
    for chat in chats:
        order = orders[chat]
        events = (await clients[0].get(f"/api/v1/orders/{order['id']}/events")).json()["items"]
        for event in events:
            if event["type"] == "order.status_changed":
                occurred[(order["number"], event["data"]["to"])] = parse_time(event["occurred_at"]).timestamp()
    latencies, end_to_end = [], []
    number_to_id = {orders[chat]["number"]: orders[chat]["id"] for chat in chats}
    for chat in chats:
        for message in fake.messages(chat)[baseline[chat] :]:
            number = re.search(r"#([0-9A-Z]{8})", message.text)
            assert number is not None
            step = STATUS[title_of(message.text)]
            latencies.append(message.wall - occurred[(number[1], step)])
            end_to_end.append(message.wall - sent_at[(number_to_id[number[1]], step)])
    print(
        f"  latency at {options.rate:g} changes/s over {len(chats)} chats ({len(plan)} changes): event → sent "
        f"p50 {percentile(latencies, 50) * 1000:.0f} ms, p99 {percentile(latencies, 99) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms (target p99 ≤ 1000 ms); request → sent p50 "
        f"{percentile(end_to_end, 50) * 1000:.0f} ms, p99 {percentile(end_to_end, 99) * 1000:.0f} ms; "
        f"429s: {refusals(fake, refused_before)}"
    )
    if statistics.mean(latencies) < 0:
        raise BenchFailure("negative latencies: the clocks disagree")


TITLE = {
    "paid": "Payment received",
    "accepted": "Order confirmed",
    "packing": "Being packed",
    "dispatched": "On its way",
    "delivered": "Delivered",
}
STATUS = {title: status for status, title in TITLE.items()}


def title_of(text: str) -> str:
    found = re.search(r"<b>(.+?)</b>", text)
    return found[1] if found else ""


async def new_orders(
    clients: list[httpx.AsyncClient],
    customers: dict[int, str],
    chats: list[int],
    gate: asyncio.Semaphore,
    suffix: str = "",
) -> dict[int, dict[str, Any]]:
    orders: dict[int, dict[str, Any]] = {}

    async def create(index: int, chat: int) -> None:
        body = {
            "customer_id": customers[chat],
            "currency": "EUR",
            "items": [{"sku": "TEA", "name": "Green tea", "quantity": 2, "unit_price": "7.90"}],
        }
        async with gate:
            response = await clients[index % len(clients)].post("/api/v1/orders", json=body)
        if response.status_code != 201:
            raise BenchFailure(f"creating an order failed: {response.status_code} {response.text}")
        orders[chat] = response.json()

    await asyncio.gather(*(create(index, chat) for index, chat in enumerate(chats)))
    return orders


async def change(
    clients: list[httpx.AsyncClient],
    index: int,
    order: dict[str, Any],
    status: str,
    gate: asyncio.Semaphore | None,
    commits: list[float],
) -> None:
    async with gate if gate is not None else contextlib.nullcontext():
        response = await clients[index % len(clients)].post(
            f"/api/v1/orders/{order['id']}/status", json={"status": status}
        )
    if response.status_code != 200:
        raise BenchFailure(f"a status change failed: {response.status_code} {response.text}")
    commits.append(parse_time(response.json()["updated_at"]).timestamp())


def api_bench(argv: list[str]) -> int:
    """bench/api.py with the load generator's customers linked to Telegram chats (see the docstring)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import api

    plain_env, plain_server = api.server_env, api.running_server
    fakes: list[FakeBotAPI] = []  # one per server: the newest is the one being benched

    def env_with_bot(*args: Any, **kwargs: Any) -> dict[str, str]:
        env: dict[str, str] = plain_env(*args, **kwargs)
        env.update(
            ORDERCAST_TELEGRAM_TOKEN=TOKEN, ORDERCAST_TELEGRAM_MODE="polling", ORDERCAST_TELEGRAM_API_URL=fakes[-1].url
        )
        return env

    @contextlib.asynccontextmanager
    async def with_linked_customers(stack: Any, options: Any, workdir: Path) -> AsyncIterator[Any]:
        fake = FakeBotAPI(enforce_limits=True, global_rate=GLOBAL_RATE, chat_rate=CHAT_RATE, tolerance=0.05)
        fakes.append(fake)
        async with running(fake), plain_server(stack, options, workdir) as server:
            await until(lambda: fake.called("getUpdates"), 30, "the bot to poll")
            url = f"http://{api.HOST}:{server.port}"
            ids: list[str] = []
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {server.api_key}"}) as client:
                for index in range(options.customers):
                    chat = 10**9 + index
                    body = {"external_id": f"bench-{secrets.token_hex(4)}", "name": f"Customer {index}"}
                    customer = (await client.post("/api/v1/customers", json=body)).json()
                    token = (await client.post(f"/api/v1/customers/{customer['id']}/telegram-link")).json()["token"]
                    await fake.say(chat, f"/start {token}")
                    ids.append(customer["id"])
            chats = range(10**9, 10**9 + options.customers)
            await until(lambda: all(fake.messages(chat) for chat in chats), 60, "every chat's greeting")
            print(f"  {len(ids)} customers linked to chats on the fake Bot API", file=sys.stderr)
            yield dataclasses.replace(server, customer_ids=ids)
            sent = sum(len(fake.messages(chat)) - 1 for chat in chats)
            print(f"  the fake Bot API received {sent} status messages", file=sys.stderr)

    api.server_env = env_with_bot
    api.running_server = with_linked_customers
    result: int = api.main(argv)
    return result


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "--api-bench":
        return api_bench(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument(
        "--processes", type=int, default=0, help="server processes (default 2 on postgres, 1 on sqlite)"
    )
    parser.add_argument("--chats", type=int, default=200)
    parser.add_argument("--changes", type=int, default=1000, help="drain phase: status changes (up to 5 per chat)")
    parser.add_argument("--rate", type=float, default=10, help="latency phase: changes per second")
    parser.add_argument("--duration", type=float, default=30, help="latency phase: seconds")
    options = parser.parse_args()
    if options.stack == "sqlite" and options.processes > 1:
        parser.error("SQLite runs one process")
    try:
        asyncio.run(run(options))
    except BenchFailure as failure:
        print(f"bench failed: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
