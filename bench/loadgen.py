"""The load generator of bench/api.py, run as its own process (pinned by the caller with taskset).

Reads a JSON spec from argv[1] and the API key from `BENCH_API_KEY`; creates customers and orders,
then runs the closed-loop and open-loop phases of status changes. Writes JSON lines to stdout:
`{"event": "phase_start", ...}` as each measured phase begins (so the caller can attach a profiler)
and one `{"event": "result", ...}` at the end. Progress goes to stderr.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import os
import resource
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from http11 import Connection, HttpError

HOST = "127.0.0.1"
# The longest walk the lifecycle allows: 6 status changes per order.
WALK = ("paid", "accepted", "packing", "dispatched", "delivered", "refunded")
WALK_BODIES = tuple(json.dumps({"status": status}).encode() for status in WALK)
REQUEST_TIMEOUT = 10.0
CONNECT_TIMEOUT = 5.0
MAX_IDLE = 2.0  # uvicorn closes keep-alive connections idle for 5 s
MAX_CONNECTIONS = 512
MAX_ERROR_SAMPLES = 5
CLK_TCK = os.sysconf("SC_CLK_TCK")

RequestErrors = (OSError, TimeoutError, HttpError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)


@dataclass(frozen=True)
class Spec:
    port: int
    server_pid: int
    server_cpu: int
    duration: float
    concurrency: int
    rate: float
    customers: int
    max_orders: int
    warmup: float
    customer_ids: list[str] = field(default_factory=list)  # given: use these instead of creating customers

    @classmethod
    def from_json(cls, text: str) -> Spec:
        return cls(**json.loads(text))


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float
    server: float
    server_sys: float
    own: float
    busy: float  # every CPU of the machine, in CPU-seconds
    server_core: float  # the CPU the server is pinned to, in CPU-seconds

    @classmethod
    def take(cls, spec: Spec) -> CpuSnapshot:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        busy = cpus_busy()
        user, system = process_cpu(spec.server_pid)
        return cls(
            wall=time.perf_counter(),
            server=user + system,
            server_sys=system,
            own=usage.ru_utime + usage.ru_stime,
            busy=busy["cpu"],
            server_core=busy.get(f"cpu{spec.server_cpu}", 0.0),
        )

    def since(self, start: CpuSnapshot) -> dict[str, float]:
        """CPU use over the interval, each as a fraction of one CPU (1.0 = one core fully busy)."""
        wall = self.wall - start.wall
        server = (self.server - start.server) / wall
        own = (self.own - start.own) / wall
        busy = (self.busy - start.busy) / wall
        return {
            "server_cpu": server,
            "server_sys_cpu": (self.server_sys - start.server_sys) / wall,
            "loadgen_cpu": own,
            "other_cpu": max(0.0, busy - server - own),
            "server_core_busy": (self.server_core - start.server_core) / wall,
        }


def process_cpu(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process (all its threads), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may contain spaces; the fields after its ')' are fixed.
        fields = stat.read().rpartition(")")[2].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def cpus_busy() -> dict[str, float]:
    """CPU-seconds spent not idle since boot, from /proc/stat: `cpu` (all) and `cpu0`, `cpu1`, …"""
    busy = {}
    with open("/proc/stat") as stat:
        for line in stat:
            if not line.startswith("cpu"):
                break
            name, *fields = line.split()
            values = [int(v) for v in fields[:8]]
            busy[name] = (sum(values) - values[3] - values[4]) / CLK_TCK  # minus idle and iowait
    return busy


def log(message: str) -> None:
    print(f"  [loadgen] {message}", file=sys.stderr, flush=True)


def emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


@dataclass
class Tally:
    """What one phase saw: latencies of 200s, and every other outcome by kind."""

    latencies: list[float] = field(default_factory=list)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if len(self.samples) < MAX_ERROR_SAMPLES:
            self.samples.append(f"{kind}: {detail[:300]}")


class Client:
    """Bearer-authenticated JSON calls on a pool of keep-alive connections."""

    def __init__(self, port: int, api_key: str) -> None:
        self.port = port
        self.headers = f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n".encode()
        self._idle: list[Connection] = []
        self._open = 0
        self._released = asyncio.Condition()

    async def connect(self) -> Connection:
        """A connection of its own, outside the pool."""
        async with asyncio.timeout(CONNECT_TIMEOUT):
            return await Connection.open(HOST, self.port)

    async def acquire(self) -> Connection:
        async with self._released:
            while True:
                while self._idle:
                    conn = self._idle.pop()
                    if conn.reusable(MAX_IDLE):
                        return conn
                    conn.close()
                    self._open -= 1
                if self._open < MAX_CONNECTIONS:
                    break
                await self._released.wait()
            self._open += 1
        try:
            return await self.connect()
        except BaseException:
            await self._forget()
            raise

    async def release(self, conn: Connection) -> None:
        if conn.closed:
            await self._forget()
            return
        async with self._released:
            self._idle.append(conn)
            self._released.notify()

    async def _forget(self) -> None:
        async with self._released:
            self._open -= 1
            self._released.notify()

    async def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        conn = await self.acquire()
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT):
                return await conn.request(method, path, body, self.headers)
        finally:
            await self.release(conn)

    async def warm(self, count: int) -> None:
        """Open `count` connections up front, so a phase doesn't pay for the handshakes."""
        conns = [await self.acquire() for _ in range(min(count, MAX_CONNECTIONS))]
        for conn in conns:
            await self.release(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


async def bounded_gather(count: int, parallel: int, make: Callable[[int], Awaitable[None]]) -> None:
    """Run `make(i)` for i in range(count), at most `parallel` at a time."""
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        while next_index < count:
            index = next_index
            next_index += 1
            await make(index)

    await asyncio.gather(*(worker() for _ in range(min(parallel, count))))


async def create_customers(client: Client, count: int, run_id: str) -> list[str]:
    ids: list[str] = [""] * count

    async def one(index: int) -> None:
        body = {"external_id": f"bench-{run_id}-{index}", "name": f"Bench customer {index}"}
        status, raw = await client.call("POST", "/api/v1/customers", json.dumps(body).encode())
        if status not in (200, 201):
            raise RuntimeError(f"POST /api/v1/customers answered {status}: {raw[:300]!r}")
        ids[index] = json.loads(raw)["id"]

    await bounded_gather(count, 8, one)
    return ids


async def create_orders(client: Client, customers: list[str], count: int, parallel: int) -> list[str]:
    """`count` fresh orders in pending_payment, created outside any measured window."""
    ids: list[str] = [""] * count
    started = time.perf_counter()

    async def one(index: int) -> None:
        body = {
            "customer_id": customers[index % len(customers)],
            "currency": "EUR",
            "items": [{"sku": f"SKU-{index % 50}", "name": "Bench item", "quantity": 1, "unit_price": "9.90"}],
        }
        status, raw = await client.call("POST", "/api/v1/orders", json.dumps(body).encode())
        if status != 201:
            raise RuntimeError(f"POST /api/v1/orders answered {status}: {raw[:300]!r}")
        ids[index] = json.loads(raw)["id"]

    await bounded_gather(count, parallel, one)
    elapsed = time.perf_counter() - started
    log(f"created {count} orders in {elapsed:.1f} s ({count / max(elapsed, 1e-9):.0f}/s)")
    return ids


class Walk:
    """An order and how far along the lifecycle it has been moved."""

    __slots__ = ("order_id", "path", "step")

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id
        self.path = f"/api/v1/orders/{order_id}/status"
        self.step = 0

    @property
    def done(self) -> bool:
        return self.step >= len(WALK)


async def change(conn: Connection, walk: Walk, headers: bytes, tally: Tally) -> bool:
    """Move `walk` one step; True when the server answered 200."""
    try:
        async with asyncio.timeout(REQUEST_TIMEOUT):
            status, raw = await conn.request("POST", walk.path, WALK_BODIES[walk.step], headers)
    except RequestErrors as exc:
        tally.error(type(exc).__name__, f"{walk.order_id} → {WALK[walk.step]}: {exc!r}")
        return False
    if status != 200:
        tally.error(str(status), f"{walk.order_id} → {WALK[walk.step]}: {raw!r}")
        return False
    walk.step += 1
    return True


def summarize(name: str, tally: Tally, elapsed: float, cpu: dict[str, float], **extra: Any) -> dict[str, Any]:
    latencies = sorted(tally.latencies)
    return {
        "phase": name,
        "ok": len(latencies),
        "elapsed": elapsed,
        "rate": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "max_ms": (latencies[-1] if latencies else 0.0) * 1000,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors),
        "error_samples": tally.samples,
        **cpu,
        **extra,
    }


async def closed_loop(client: Client, orders: list[str], spec: Spec, duration: float, name: str) -> dict[str, Any]:
    """`concurrency` workers, each on its own connection, each walking its own orders to the end."""
    fresh = collections.deque(orders)
    tally = Tally()
    conns = [await client.connect() for _ in range(spec.concurrency)]
    exhausted_at: float | None = None
    emit({"event": "phase_start", "phase": name, "duration": duration})
    before = CpuSnapshot.take(spec)
    end = before.wall + duration

    async def worker(slot: int) -> None:
        nonlocal exhausted_at
        conn = conns[slot]
        while time.perf_counter() < end:
            if not fresh:
                exhausted_at = exhausted_at or time.perf_counter() - before.wall
                return
            walk = Walk(fresh.popleft())
            while not walk.done and (sent := time.perf_counter()) < end:
                if conn.closed:
                    conn = conns[slot] = await client.connect()
                if not await change(conn, walk, client.headers, tally):
                    break  # the order's state is unknown now: take a fresh one
                tally.latencies.append(time.perf_counter() - sent)

    await asyncio.gather(*(worker(slot) for slot in range(spec.concurrency)))
    after = CpuSnapshot.take(spec)
    for conn in conns:
        conn.close()
    if exhausted_at is not None and name != "warmup":
        log(f"{name}: the order pool ran out after {exhausted_at:.1f} s (raise --max-orders)")
    return summarize(
        name,
        tally,
        after.wall - before.wall,
        after.since(before),
        concurrency=spec.concurrency,
        orders_used=len(orders) - len(fresh),
        pool_exhausted_at=exhausted_at,
    )


async def open_loop(client: Client, orders: list[str], spec: Spec) -> dict[str, Any]:
    """Sends at fixed intervals whatever the responses do; latency counts from the scheduled time."""
    fresh = collections.deque(orders)
    ready: collections.deque[Walk] = collections.deque()  # part-walked orders with nothing in flight
    tally = Tally()
    total = int(spec.rate * spec.duration)
    interval = 1.0 / spec.rate
    starved = 0
    in_flight: set[asyncio.Task[None]] = set()
    await client.warm(spec.concurrency)
    emit({"event": "phase_start", "phase": "open", "duration": spec.duration})
    before = CpuSnapshot.take(spec)

    async def send(walk: Walk, scheduled: float) -> None:
        try:
            conn = await client.acquire()
        except RequestErrors as exc:
            tally.error(type(exc).__name__, f"connect: {exc!r}")
            return
        try:
            ok = await change(conn, walk, client.headers, tally)
        finally:
            await client.release(conn)
        if ok:
            tally.latencies.append(time.perf_counter() - scheduled)
            if not walk.done:
                ready.append(walk)

    for index in range(total):
        scheduled = before.wall + index * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if ready:
            walk = ready.popleft()
        elif fresh:
            walk = Walk(fresh.popleft())
        else:
            starved += 1
            continue
        task = asyncio.create_task(send(walk, scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    sent_until = time.perf_counter() - before.wall
    if in_flight:
        # Each request has its own timeout; this bound only guards against a bug here.
        _, pending = await asyncio.wait(set(in_flight), timeout=REQUEST_TIMEOUT * 2)
        for task in pending:
            task.cancel()
            tally.error("abandoned", "still running after the drain deadline")
    after = CpuSnapshot.take(spec)
    if starved:
        tally.errors["starved"] += starved
        tally.samples.append(f"starved: {starved} sends found no order to move (raise --max-orders)")
    result = summarize("open", tally, after.wall - before.wall, after.since(before))
    # The offered rate is set; the achieved rate is 200s over the send window (plus the drain).
    result.update(target_rate=spec.rate, offered=total, send_window=sent_until, orders_used=len(orders) - len(fresh))
    return result


async def run(spec: Spec, api_key: str) -> dict[str, Any]:
    client = Client(spec.port, api_key)
    run_id = os.urandom(4).hex()
    try:
        if spec.customer_ids:
            customers = spec.customer_ids
            log(f"using the {len(customers)} customers given")
        else:
            customers = await create_customers(client, spec.customers, run_id)
            log(f"created {len(customers)} customers")

        # Warm-up: a short closed loop (ending early if its orders run out), which also estimates
        # how many orders the measured one needs.
        warm_orders = await create_orders(client, customers, spec.concurrency * 8, spec.concurrency)
        warm = await closed_loop(client, warm_orders, spec, spec.warmup, "warmup")
        log(f"warm-up: {warm['rate']:.0f} changes/s, {warm['errors']} errors")
        need = math.ceil(max(warm["rate"], 50.0) * 2.0 * spec.duration / len(WALK)) + 2 * spec.concurrency
        if need > spec.max_orders:
            log(f"closed loop would need ~{need} orders; capped at --max-orders {spec.max_orders}")
        orders = await create_orders(client, customers, min(need, spec.max_orders), spec.concurrency)
        closed = await closed_loop(client, orders, spec, spec.duration, "closed")
        log(f"closed loop: {closed['rate']:.0f} changes/s, {closed['errors']} errors")

        # Open loop: a fresh order per 6 sends, plus one per request in flight, and an overloaded server
        # can hold every request of the last REQUEST_TIMEOUT seconds: a send must never find no order.
        need = math.ceil(spec.rate * spec.duration / len(WALK) + spec.rate * min(spec.duration, REQUEST_TIMEOUT))
        orders = await create_orders(client, customers, min(need, spec.max_orders), spec.concurrency)
        opened = await open_loop(client, orders, spec)
        log(f"open loop: {opened['rate']:.0f} changes/s achieved, {opened['errors']} errors")
        return {"event": "result", "warmup": warm, "phases": [closed, opened]}
    finally:
        client.close()


def main() -> int:
    spec = Spec.from_json(sys.argv[1])
    api_key = os.environ["BENCH_API_KEY"]
    try:
        import uvloop  # ~40 µs of client CPU per request here, against ~60 µs on the default loop
    except ImportError:
        emit(asyncio.run(run(spec, api_key)))
    else:
        emit(uvloop.run(run(spec, api_key)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
