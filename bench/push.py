"""Web Push throughput and latency: status changes → pushes to 10 subscriptions on a fake push service.

Starts `ordercast serve` (pinned to `--cpu-server`) on a fresh database and a fake push service in
its own process (pinned to `--cpu-client`, with this driver): the test suite's fake, which checks
the VAPID token and decrypts every push as a vendor would. Orders are created before the devices
subscribe (so their `order.created` pushes don't count), then:

1. **steady**: `--events` status changes at `--rate` per second (default 1,000 at 20/s: 10,000 pushes
   to 10 subscriptions): pushes/s, and p50/p99 latency from each event's `occurred_at` to the push
   arriving at the push service (its decrypted payload names the order and the status).
2. **ramp**: steps of `--step-duration` s at rising rates until a step's p99 passes 1 s or the pushes
   fall behind: the highest sustained pushes/s.

A measurement, not a test: exits 0 whatever the figures, non-zero only when the bench itself fails.

    .venv/bin/python bench/push.py [--stack postgres|sqlite] [--rate 20] [--events 1000]
    .venv/bin/python bench/push.py --api-bench 2 [bench/api.py's options]   # api.py with 2 push devices
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from api import (
    HOST,
    ROOT,
    BenchFailure,
    delete_redis_keys,
    free_port,
    log_tail,
    migrate,
    postgres_database,
    python,
    server_env,
    spawn,
    stop,
    wait_ready,
)
from http11 import Connection
from loadgen import cpus_busy, process_cpu

SELF = Path(__file__).resolve()
DEVICES = 10
TARGET_P99 = 1.0
TARGET_SUSTAINED = 300.0
WALK = ("paid", "accepted", "packing", "dispatched", "delivered", "refunded")
# A push's title → the status it tells of (the admin templates of ordercast/notify/templates.py).
TITLES = (
    ("Payment received for", "paid"),
    (": Confirmed", "accepted"),
    (": Being packed", "packing"),
    (": On its way", "dispatched"),
    (": Delivered", "delivered"),
    (" refunded", "refunded"),
)
DRAIN_TIMEOUT = 120.0


# The fake push service, run as `push.py --fake-service PORT` in its own process.


def serve_fake(port: int) -> None:
    sys.path.insert(0, str(ROOT))
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from tests.notify.fakepush import FakePushService

    fake = FakePushService(url=f"http://{HOST}:{port}")

    async def subscribe(request: Request) -> Response:
        key = (await request.json())["key"]
        return Response(orjson.dumps(fake.subscribe(key)), media_type="application/json")

    async def pushes(request: Request) -> Response:
        start = int(request.query_params.get("since", "0"))
        rows = [(p.token, p.payload["url"], p.title, p.wall) for p in fake.pushes[start:]]
        return Response(orjson.dumps({"pushes": rows, "refused": fake.refused[:20]}), media_type="application/json")

    fake.app.router.routes.extend(
        [Route("/control/subscribe", subscribe, methods=["POST"]), Route("/control/pushes", pushes, methods=["GET"])]
    )
    uvicorn.run(fake.app, host=HOST, port=port, log_level="warning", access_log=False, loop="uvloop", http="httptools")


# The driver.


@dataclass(frozen=True)
class Options:
    stack: str
    rate: float
    events: int
    ramp: tuple[float, ...]
    step_duration: float
    cpu_server: int
    cpu_client: int
    connections: int


class Api:
    """A few keep-alive connections to the server, one request at a time each."""

    def __init__(self, port: int, api_key: str, size: int) -> None:
        self._port = port
        self._headers = f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n".encode()
        self._size = size
        self._idle: asyncio.Queue[Connection] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self._size):
            self._idle.put_nowait(await Connection.open(HOST, self._port))

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = await self._idle.get()
        try:
            if not conn.reusable(max_idle=3.0):  # uvicorn closes connections idle for 5 s
                conn.close()
                conn = await Connection.open(HOST, self._port)
            async with asyncio.timeout(30):
                status, raw = await conn.request(
                    method, path, orjson.dumps(body) if body is not None else None, self._headers
                )
        finally:
            self._idle.put_nowait(conn)
        return status, orjson.loads(raw) if raw else None

    async def ok(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        status, answer = await self.call(method, path, body)
        if status not in expect:
            raise BenchFailure(f"{method} {path} answered {status}: {answer}")
        return answer


class Fake:
    def __init__(self, port: int) -> None:
        self.port = port
        self.seen = 0

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        conn = await Connection.open(HOST, self.port)
        try:
            async with asyncio.timeout(60):
                headers = b"Content-Type: application/json\r\n"
                status, raw = await conn.request(method, path, orjson.dumps(body) if body else None, headers)
        finally:
            conn.close()
        if status != 200:
            raise BenchFailure(f"the fake push service answered {status} to {path}")
        return orjson.loads(raw)

    async def new_pushes(self) -> tuple[list[tuple[str, str, str, float]], list[Any]]:
        answer = await self.call("GET", f"/control/pushes?since={self.seen}")
        self.seen += len(answer["pushes"])
        return [tuple(row) for row in answer["pushes"]], answer["refused"]


@dataclass
class Walk:
    order_id: str
    step: int = 0


@dataclass
class Phase:
    name: str
    rate: float  # events/s offered
    events: int
    started: float = 0.0  # wall clock
    ended: float = 0.0
    server_cpu: float = 0.0
    machine_busy: float = 0.0  # cores busy, by anything
    errors: int = 0
    latencies: list[float] | None = None
    received: int = 0
    last_arrival: float = 0.0

    @property
    def expected(self) -> int:
        return self.events * DEVICES

    def percentile(self, q: float) -> float:
        values = sorted(self.latencies or [])
        if not values:
            return math.nan
        return values[max(1, math.ceil(q / 100 * len(values))) - 1]

    @property
    def throughput(self) -> float:
        """Pushes per second from the phase's first event to its last push."""
        span = max(self.last_arrival, self.ended) - self.started
        return self.received / span if span > 0 else 0.0

    @property
    def sustained(self) -> bool:
        return self.received >= self.expected and self.percentile(99) <= TARGET_P99


async def run_phase(api: Api, fake: Fake, walks: list[Walk], phase: Phase, server_pid: int) -> list[tuple[str, str]]:
    """Send `phase.events` status changes on a fixed schedule; returns (order id, status) of each."""
    sent: list[tuple[str, str]] = []
    interval = 1 / phase.rate
    cpu_before, busy_before = sum(process_cpu(server_pid)), cpus_busy()["cpu"]
    phase.started = time.time()
    start = time.monotonic()
    tasks = []
    # Round-robin over the orders: an order's next change comes long after its last one answered.
    planned = {id(walk): walk.step for walk in walks}
    schedule: list[Walk] = []
    while len(schedule) < phase.events:
        lap = [walk for walk in walks if planned[id(walk)] < len(WALK)]
        if not lap:
            raise BenchFailure(f"the orders can't take {phase.events} more changes")
        for walk in lap[: phase.events - len(schedule)]:
            planned[id(walk)] += 1
            schedule.append(walk)

    async def one(walk: Walk) -> None:
        status = WALK[walk.step]
        walk.step += 1
        code, answer = await api.call("POST", f"/api/v1/orders/{walk.order_id}/status", {"status": status})
        if code != 200:
            phase.errors += 1
            print(f"  status change answered {code}: {answer}", file=sys.stderr)
        else:
            sent.append((walk.order_id, status))

    for index, walk in enumerate(schedule):
        await asyncio.sleep(max(0.0, start + index * interval - time.monotonic()))
        tasks.append(asyncio.create_task(one(walk)))
    await asyncio.gather(*tasks)
    phase.ended = time.time()
    wall = time.monotonic() - start
    phase.server_cpu = (sum(process_cpu(server_pid)) - cpu_before) / wall
    phase.machine_busy = (cpus_busy()["cpu"] - busy_before) / wall
    return sent


async def collect(api: Api, fake: Fake, phase: Phase, sent: list[tuple[str, str]], deadline: float) -> None:
    """Wait for the phase's pushes; latency of each from its event's `occurred_at`."""
    expected = {(order, status) for order, status in sent}
    arrivals: list[tuple[str, str, float]] = []
    while time.monotonic() < deadline:
        rows, refused = await fake.new_pushes()
        if refused:
            raise BenchFailure(f"the fake push service refused pushes: {refused}")
        for _, url, title, wall in rows:
            order = url.rsplit("=", 1)[1]
            status = next((s for marker, s in TITLES if marker in title), None)
            if status is not None and (order, status) in expected:
                arrivals.append((order, status, wall))
        if len(arrivals) >= len(expected) * DEVICES:
            break
        await asyncio.sleep(0.25)
    occurred: dict[tuple[str, str], float] = {}
    for order in {order for order, _ in sent}:
        events = await api.ok("GET", f"/api/v1/orders/{order}/events")
        for event in events["items"]:
            if event["type"] == "order.status_changed":
                moment = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
                occurred[(order, event["data"]["to"])] = moment.timestamp()
    phase.latencies = [wall - occurred[(order, status)] for order, status, wall in arrivals]
    phase.received = len(arrivals)
    phase.last_arrival = max((wall for _, _, wall in arrivals), default=phase.ended)


async def start_fake(cpu: int, cleanup: contextlib.AsyncExitStack) -> Fake:
    """The fake push service in its own process pinned to `cpu` (stopped by `cleanup`), once it answers."""
    port = free_port()
    process = await spawn(
        cpu, python(), str(SELF), "--fake-service", str(port), env=dict(os.environ), stdin=asyncio.subprocess.DEVNULL
    )
    cleanup.push_async_callback(stop, process)
    fake = Fake(port)
    for _ in range(100):
        with contextlib.suppress(OSError):
            await fake.call("GET", "/control/pushes?since=0")
            return fake
        await asyncio.sleep(0.1)
    raise BenchFailure(f"the fake push service did not answer on :{port}")


@contextlib.asynccontextmanager
async def running(options: Options, workdir: Path) -> AsyncIterator[tuple[Api, Fake, int]]:
    async with contextlib.AsyncExitStack() as cleanup:
        fake = await start_fake(options.cpu_client, cleanup)
        port = free_port()
        api_key = f"ock_{secrets.token_urlsafe(32)}"
        log_path = workdir / f"server-{options.stack}.log"
        if options.stack == "sqlite":
            env = server_env(f"sqlite://{workdir}/bench.db", port, api_key, redis_prefix=None)
        else:
            database_url = await cleanup.enter_async_context(postgres_database())
            prefix = f"bench:{secrets.token_hex(4)}"
            cleanup.push_async_callback(delete_redis_keys, prefix)
            env = server_env(database_url, port, api_key, redis_prefix=prefix)
            await migrate(env, log_path)
        env["ORDERCAST_PUSH_ALLOW_INSECURE"] = "true"
        log_file = cleanup.enter_context(log_path.open("ab"))
        server = await spawn(
            options.cpu_server,
            python(),
            "-m",
            "ordercast",
            "serve",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
        cleanup.push_async_callback(stop, server)
        await wait_ready(server, port, log_path)
        api = Api(port, api_key, options.connections)
        await api.open()
        print(f"  server pid {server.pid} on :{port}, fake push service on :{fake.port}", file=sys.stderr)
        yield api, fake, server.pid
        if server.returncode is not None:
            raise BenchFailure(f"the server exited with {server.returncode}:\n{log_tail(log_path)}")


async def bench(options: Options) -> list[Phase]:
    with tempfile.TemporaryDirectory(prefix="ordercast-push-") as tmp:
        async with running(options, Path(tmp)) as (api, fake, server_pid):
            total_events = options.events + sum(int(rate * options.step_duration) for rate in options.ramp)
            customer = await api.ok("POST", "/api/v1/customers", {"external_id": "bench-push", "name": "Bench"})
            item = {"sku": "TEA", "name": "Tea", "quantity": 2, "unit_price": "4.95"}
            body = {"customer_id": customer["id"], "currency": "EUR", "items": [item]}
            count = math.ceil(total_events / len(WALK)) + 1
            print(f"  creating {count} orders (before any device subscribes)", file=sys.stderr)
            orders = await asyncio.gather(*(api.ok("POST", "/api/v1/orders", body) for _ in range(count)))
            walks = [Walk(order["id"]) for order in orders]
            key = (await api.ok("GET", "/api/v1/push/vapid-public-key"))["key"]
            for _ in range(DEVICES):
                subscription = await fake.call("POST", "/control/subscribe", {"key": key})
                await api.ok("POST", "/api/v1/push/subscriptions", subscription)

            phases = [Phase("steady", options.rate, options.events)]
            phases += [Phase("ramp", rate, int(rate * options.step_duration)) for rate in options.ramp]
            done: list[Phase] = []
            for phase in phases:
                done.append(phase)
                print(f"  {phase.name}: {phase.events} events at {phase.rate:g}/s", file=sys.stderr)
                sent = await run_phase(api, fake, walks, phase, server_pid)
                await collect(api, fake, phase, sent, time.monotonic() + DRAIN_TIMEOUT)
                print(
                    f"    {phase.received}/{phase.expected} pushes, {phase.throughput:.0f}/s,"
                    f" p99 {phase.percentile(99):.3f} s",
                    file=sys.stderr,
                )
                if phase.name == "ramp" and not phase.sustained:
                    break
            stats = await api.ok("GET", "/api/v1/deliveries/stats")
            print(f"  server's own figures: {json.dumps(stats['push'])}", file=sys.stderr)
            return done


def report(phases: list[Phase], options: Options) -> None:
    header = (
        f"{'phase':<8} {'events/s':>8} {'pushes':>13} {'pushes/s':>9} {'p50 s':>7} {'p99 s':>7} {'max s':>7}"
        f" {'errors':>6} {'server CPU':>10} {'machine busy':>12}"
    )
    print()
    print(f"bench/push.py on {options.stack}: {DEVICES} subscriptions, latency = occurred_at → the push service")
    print(header)
    print("-" * len(header))
    for phase in phases:
        print(
            f"{phase.name:<8} {phase.rate:>8g} {phase.received:>6}/{phase.expected:<6} {phase.throughput:>9.0f}"
            f" {phase.percentile(50):>7.3f} {phase.percentile(99):>7.3f} {phase.percentile(100):>7.3f}"
            f" {phase.errors:>6} {phase.server_cpu:>10.0%} {phase.machine_busy:>10.2f} cores"
        )
    steady = phases[0]
    sustained = [phase.rate * DEVICES for phase in phases if phase.sustained]
    best = max(sustained, default=0.0)
    met = "met" if steady.sustained else "MISSED"
    print(f"\nsteady {steady.rate:g} events/s: p99 {steady.percentile(99):.3f} s (target ≤ {TARGET_P99:g} s: {met})")
    met = "met" if best >= TARGET_SUSTAINED else "MISSED"
    print(f"highest sustained: {best:.0f} pushes/s (p99 ≤ {TARGET_P99:g} s, none behind; target ≥ 300: {met})")
    print(
        "machine busy: cores in use by anything during the phase (of 2); other benchmarks running at the same"
        " time show up there and in the figures."
    )


def api_bench(devices: int, argv: list[str]) -> int:
    """bench/api.py, with `devices` push subscriptions of the API key's admin on a fake push service:
    every status change then also plans (and the server sends) a push per device."""
    import api

    plain_env, plain_server = api.server_env, api.running_server

    def env_with_push(*args: Any, **kwargs: Any) -> dict[str, str]:
        env = plain_env(*args, **kwargs)
        env["ORDERCAST_PUSH_ALLOW_INSECURE"] = "true"
        return env

    @contextlib.asynccontextmanager
    async def with_devices(stack: Any, options: Any, workdir: Path) -> AsyncIterator[Any]:
        async with contextlib.AsyncExitStack() as cleanup:
            fake = await start_fake(options.cpu_client, cleanup)
            server = await cleanup.enter_async_context(plain_server(stack, options, workdir))
            client = Api(server.port, server.api_key, 1)
            await client.open()
            key = (await client.ok("GET", "/api/v1/push/vapid-public-key"))["key"]
            for _ in range(devices):
                await client.ok(
                    "POST", "/api/v1/push/subscriptions", await fake.call("POST", "/control/subscribe", {"key": key})
                )
            print(f"  {devices} push subscriptions on the fake push service :{fake.port}", file=sys.stderr)
            yield server
            rows, refused = await fake.new_pushes()
            print(f"  the fake push service received {len(rows)} pushes, refused {len(refused)}", file=sys.stderr)

    api.server_env = env_with_push
    api.running_server = with_devices
    result: int = api.main(argv)
    return result


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--fake-service":
        serve_fake(int(sys.argv[2]))
        return 0
    if len(sys.argv) >= 3 and sys.argv[1] == "--api-bench":
        return api_bench(int(sys.argv[2]), sys.argv[3:])
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--rate", type=float, default=20, help="events/s in the steady phase")
    parser.add_argument("--events", type=int, default=1000, help="events in the steady phase")
    parser.add_argument(
        "--ramp", default="30,40,50,60,80,100", help="events/s of the ramp's steps, comma-separated (empty: none)"
    )
    parser.add_argument("--step-duration", type=float, default=10)
    parser.add_argument("--cpu-server", type=int, default=0)
    parser.add_argument("--cpu-client", type=int, default=1)
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections for status changes")
    args = parser.parse_args()
    options = Options(
        stack=args.stack,
        rate=args.rate,
        events=args.events,
        ramp=tuple(float(rate) for rate in args.ramp.split(",") if rate.strip()),
        step_duration=args.step_duration,
        cpu_server=args.cpu_server,
        cpu_client=args.cpu_client,
        connections=args.connections,
    )
    try:
        phases = asyncio.run(bench(options))
    except BenchFailure as failure:
        print(f"bench failed: {failure}", file=sys.stderr)
        return 1
    report(phases, options)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
