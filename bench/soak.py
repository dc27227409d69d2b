"""Fault soak: two `ordercast serve` processes under steady load while faults are injected in turn,
judged afterwards against the server's own event log and delivery rows.

Runs on one fresh PostgreSQL database and one Redis server of its own (started here on a free port,
AOF on, so a restart keeps history). Load: `--rate` order changes/s (creations and status changes,
spread over both processes, by API key), `--clients` stream clients (half SSE, half WebSocket, on the
admin channel) reconnecting at random moments with their last id to a random process, `--chats`
customers linked to Telegram chats on the test suite's fake Bot API (flood limits on), `--devices`
Web Push subscriptions on its fake push service. `--minutes` is split into five windows: steady,
then one fault each, injected a third of the way in and announced with a timestamp (a window lasts at
least a third of a window past its fault's healing, so a slow recovery moves the later ones back):

1. `kill -9` of one server process, restarted at once on the same port;
2. a restart of the Redis server (same port, AOF kept);
3. every app connection to PostgreSQL terminated (`pg_terminate_backend`);
4. a storm of `--storm` stream connections opened and dropped abruptly.

At the end (after the load stops and the delivery queue drains) it prints, per window and overall:
events lost and duplicated per stream client against the `events` table, `reset`s received,
Telegram and push messages lost (a delivery row whose message never reached the fake) and duplicated
(allowed only for rows in flight in the killed process), HTTP 5xx answers, and p99 latency of the API
calls before, during and after each fault. Figures, not verdicts: exits 0 whatever they are
(non-zero only when the soak itself could not run). `--json PATH` writes them for tests/test_soak.py.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 50] [--clients 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
import orjson  # noqa: E402
from api import die_with_parent, free_port, log_tail, migrate, python, stop, wait_ready  # noqa: E402
from http11 import Connection, HttpError  # noqa: E402
from redis.asyncio import Redis  # noqa: E402

from tests.bot.fakebot import TOKEN, FakeBotAPI  # noqa: E402
from tests.bot.fakebot import running as running_bot  # noqa: E402

HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
WALK = ("paid", "accepted", "packing", "dispatched", "delivered")
FAULTS = (
    ("kill", "kill -9 server"),
    ("redis", "Redis restart"),
    ("postgres", "PostgreSQL connections terminated"),
    ("storm", "disconnect storm"),
)
REQUEST_TIMEOUT = 10.0
MAX_IN_FLIGHT = 1000  # API operations in flight at once; past it a scheduled one is skipped (and counted)
POOL_SIZE = 256  # keep-alive connections per server
CHANGE_GAP = 1.5  # seconds between two changes of one order
HEAL_DEADLINE = 60.0
REDIS_DOWN = 1.0  # seconds the Redis server stays down during its restart
PUSH_PAGE, MAX_PUSH_PAGES = 5000, 10_000  # reading the fake push service's record
SLOW_STOP = 3.0  # seconds after SIGTERM past which a server's stop is worth a note
NUMBER = re.compile(r"[0-9A-HJKMNP-TV-Z]{8}")
# A log line at ERROR or above (text or JSON format); tracebacks of warnings are not counted.
ERROR_LINE = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) |\"level\": \"(error|critical)\"")
# A process's own origin in a message (a link): two processes may send the same message.
ORIGIN = re.compile(r"https?://127\.0\.0\.1:\d+")
UNFINISHED = ("pending", "sending", "retrying")


class SoakFailure(Exception):
    """The soak could not run (a server didn't start, a fake didn't answer, …)."""


@dataclass(frozen=True)
class Options:
    minutes: float
    rate: float
    clients: int
    chats: int
    customers: int
    linked_share: float
    devices: int
    storm: int
    seed: int
    drain: float
    json_path: Path | None
    keep: bool
    append_only: bool
    server_log_level: str


def stamp(start: float) -> str:
    now = time.time()
    return f"[{time.strftime('%H:%M:%S', time.localtime(now))} +{now - start:6.1f}s]"


def say(message: str) -> None:
    print(message, flush=True)


def note(message: str) -> None:
    print(f"  {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


async def until(condition: Callable[[], Any], within: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise SoakFailure(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)


async def timed(what: str, stopping: Callable[[], Any]) -> None:
    began = time.monotonic()
    await stopping()
    note(f"stopped {what} in {time.monotonic() - began:.1f} s")


# --- the processes: Redis, the servers, the fake push service, the stream clients ---------------------


async def spawn(*args: str, env: dict[str, str] | None = None, **kwargs: Any) -> asyncio.subprocess.Process:
    # A session of its own (Ctrl-C reaches only the soak, which stops children in order); SIGTERM
    # from the kernel if the soak dies without cleaning up.
    return await asyncio.create_subprocess_exec(
        *args, env=env, cwd=ROOT, start_new_session=True, preexec_fn=die_with_parent, **kwargs
    )


class RedisServer:
    """A redis-server of the soak's own, AOF on, in `directory`: a restart keeps its data."""

    def __init__(self, directory: Path, *, append_only: bool) -> None:
        self.port = free_port()
        self.directory = directory
        self.append_only = append_only
        self.log_path = directory / "redis.log"
        self.url = f"redis://{HOST}:{self.port}/0"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await spawn(
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--appendonly",
                "yes" if self.append_only else "no",
                "--dir",
                str(self.directory),
                "--save",
                "",
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        client = Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:

            async def answers() -> bool:
                if self.process is not None and self.process.returncode is not None:
                    raise SoakFailure(f"redis-server exited with {self.process.returncode}:\n{log_tail(self.log_path)}")
                try:
                    return bool(await client.ping())
                except Exception:
                    return False

            await until(answers, 30, "redis-server to answer")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self.process is not None:
            await stop(self.process)  # SIGTERM: Redis writes and fsyncs its AOF before exiting


class Server:
    """One `ordercast serve` process; restartable on the same port."""

    def __init__(self, index: int, port: int, env: dict[str, str], directory: Path) -> None:
        self.index = index
        self.port = port
        self.env = {**env, "ORDERCAST_PORT": str(self.port)}
        self.log_path = directory / f"server-{index}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts} at {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self.process = await spawn(
                python(),
                "-m",
                "ordercast",
                "serve",
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    async def ready(self) -> None:
        assert self.process is not None
        try:
            await wait_ready(self.process, self.port, self.log_path)
        except Exception as exc:
            raise SoakFailure(f"server {self.index}: {exc}") from None

    def kill(self) -> int:
        assert self.process is not None
        pid = self.process.pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        return pid

    async def stop(self) -> None:
        """SIGTERM; if it is still running after a few seconds, say which TCP connections it still has."""
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.process.wait(), SLOW_STOP)
        if self.process.returncode is None:
            states = await tcp_states(self.port)
            note(f"server {self.index} still runs {SLOW_STOP:.0f} s after SIGTERM; TCP on its port: {states}")
        await stop(self.process)

    def error_lines(self) -> list[str]:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return [line for line in text.splitlines() if ERROR_LINE.search(line)]


async def tcp_states(port: int) -> dict[str, int]:
    """The states of the TCP connections on a local port (from `ss`), counted."""
    try:
        process = await asyncio.create_subprocess_exec(
            "ss", "-tanH", f"sport = :{port}", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
        )
        output, _ = await asyncio.wait_for(process.communicate(), 5)
    except (OSError, TimeoutError):
        return {}
    return dict(collections.Counter(line.split()[0] for line in output.decode().splitlines() if line.strip()))


class FakePush:
    """bench/soak_push.py in its own process (it decrypts every push: CPU the soak's loop shouldn't pay)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.log_path = directory / "fakepush.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await spawn(
                python(),
                str(HERE / "soak_push.py"),
                str(self.port),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        await until(self._answers, 30, "the fake push service")

    async def _answers(self) -> bool:
        try:
            await self.call("GET", "/control/pushes?since=0")
        except (OSError, HttpError, SoakFailure):
            return False
        return True

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with asyncio.timeout(10):
            conn = await Connection.open(HOST, self.port)
        try:
            async with asyncio.timeout(60):
                status, raw = await conn.request(
                    method,
                    path,
                    orjson.dumps(body) if body is not None else None,
                    b"Content-Type: application/json\r\n",
                )
        finally:
            conn.close()
        if status != 200:
            raise SoakFailure(f"the fake push service answered {status} to {path}")
        return orjson.loads(raw)

    async def stop(self) -> None:
        if self.process is not None:
            await stop(self.process, deadline=5)


class StreamClients:
    """bench/soak_streams.py: the stream clients in their own process, driven by JSON lines."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.process: asyncio.subprocess.Process | None = None
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    async def start(self, spec: dict[str, Any], api_key: str) -> dict[str, Any]:
        self.process = await spawn(
            python(),
            str(HERE / "soak_streams.py"),
            json.dumps(spec),
            env={**os.environ, "SOAK_API_KEY": api_key},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 20,
        )
        self._reader = asyncio.create_task(self._read())
        return await self.next_event(spec["connect_within"] + 10)

    async def _read(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            with contextlib.suppress(ValueError):
                await self._events.put(json.loads(line))
        await self._events.put({"event": "exited"})

    async def next_event(self, within: float) -> dict[str, Any]:
        try:
            return await asyncio.wait_for(self._events.get(), within)
        except TimeoutError:
            raise SoakFailure("the stream clients' process did not answer in time") from None

    async def command(self, command: dict[str, Any], within: float) -> dict[str, Any]:
        assert self.process is not None
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        event = await self.next_event(within)
        if event["event"] == "exited":
            raise SoakFailure("the stream clients' process exited")
        return event

    async def stop(self) -> None:
        if self.process is not None:
            if self.process.stdin is not None:
                self.process.stdin.close()
            await stop(self.process, deadline=10, grace=5)
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


# --- the API load -------------------------------------------------------------------------------------


class Refused(Exception):
    """No connection: the request never left (the server is down); another server may take it."""


class Pool:
    """Keep-alive connections to one server, one request at a time each."""

    def __init__(self, port: int, api_key: str) -> None:
        self.port = port
        self.headers = f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n".encode()
        self._idle: list[Connection] = []
        self._slots = asyncio.Semaphore(POOL_SIZE)

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        async with self._slots:
            conn = None
            while self._idle:
                candidate = self._idle.pop()
                if candidate.reusable(max_idle=2.0):  # uvicorn closes keep-alive connections idle for 5 s
                    conn = candidate
                    break
                candidate.close()
            if conn is None:
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        conn = await Connection.open(HOST, self.port)
                except (OSError, TimeoutError) as exc:
                    raise Refused(repr(exc)) from None
            async with asyncio.timeout(REQUEST_TIMEOUT):
                status, raw = await conn.request(
                    method, path, orjson.dumps(body) if body is not None else None, self.headers
                )
            if not conn.closed:
                self._idle.append(conn)
            return status, raw

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


@dataclass
class Call:
    at: float  # scheduled wall time
    latency: float  # from the scheduled time to the answer (open loop: a stall shows)
    outcome: str  # the status code, or an error kind (`refused`, `timeout`, `reset`, `backlog`)
    kind: str


@dataclass
class Walk:
    order_id: str
    linked: bool
    step: int = 0  # index in WALK of the next status
    ready_at: float = 0.0
    uncertain: bool = False  # a change's outcome is unknown (cut connection): read the order first


class Load:
    """`rate` operations/s on a fixed schedule: create an order, or move a waiting one to its next status."""

    def __init__(self, pools: list[Pool], linked: list[str], others: list[str], options: Options) -> None:
        self.pools = pools
        self.linked = linked
        self.others = others
        self.options = options
        self.rng = random.Random(options.seed + 1)
        self.calls: list[Call] = []
        self.waiting: collections.deque[Walk] = collections.deque()
        self.in_flight = 0
        self.created = 0
        self.changes = 0
        self.samples: list[str] = []
        self._turn = 0

    async def run(self, start: float, stop: asyncio.Event, longest: float) -> None:
        """Operations on schedule from `start` until `stop` is set (at most `longest` seconds)."""
        tasks: set[asyncio.Task[None]] = set()
        begin_mono = time.monotonic() + (start - time.time())
        for number in range(int(self.options.rate * longest)):
            scheduled_mono = begin_mono + number / self.options.rate
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, scheduled_mono - time.monotonic())):
                    await stop.wait()
            if stop.is_set():
                break
            scheduled = start + number / self.options.rate
            if self.in_flight >= MAX_IN_FLIGHT:
                self.calls.append(Call(scheduled, 0.0, "backlog", "skipped"))
                continue
            task = asyncio.create_task(self.operation(number, scheduled, scheduled_mono))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=3 * REQUEST_TIMEOUT)

    async def operation(self, number: int, scheduled: float, scheduled_mono: float) -> None:
        self.in_flight += 1
        try:
            walk = self.waiting[0] if self.waiting and self.waiting[0].ready_at <= time.monotonic() else None
            if walk is None:
                await self.create(number, scheduled, scheduled_mono)
            else:
                self.waiting.popleft()
                await self.advance(walk, number, scheduled, scheduled_mono)
        finally:
            self.in_flight -= 1

    async def request(
        self, number: int, kind: str, method: str, path: str, body: Any, scheduled: float, scheduled_mono: float
    ) -> tuple[int, Any] | None:
        """One API call on server `number % 2` (the other if this one is down); None when it went unanswered."""
        order = [number % len(self.pools), *(i for i in range(len(self.pools)) if i != number % len(self.pools))]
        outcome = "refused"
        for index in order:
            try:
                status, raw = await self.pools[index].call(method, path, body)
            except Refused:
                continue
            except TimeoutError:
                outcome = "timeout"
                break
            except (OSError, HttpError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                outcome = "reset"
                if len(self.samples) < 5:
                    self.samples.append(f"{method} {path}: {exc!r}")
                break
            self.calls.append(Call(scheduled, time.monotonic() - scheduled_mono, str(status), kind))
            if status >= 500 and len(self.samples) < 5:
                self.samples.append(f"{method} {path} → {status} {raw[:300]!r}")
            try:
                return status, orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return status, None
        self.calls.append(Call(scheduled, time.monotonic() - scheduled_mono, outcome, kind))
        return None

    async def create(self, number: int, scheduled: float, scheduled_mono: float) -> None:
        linked = self.rng.random() < self.options.linked_share
        customers = self.linked if linked else self.others
        self._turn += 1
        body = {
            "customer_id": customers[self._turn % len(customers)],
            "currency": "EUR",
            "items": [{"sku": "TEA", "name": "Green tea", "quantity": 2, "unit_price": "7.90"}],
        }
        answer = await self.request(number, "create", "POST", "/api/v1/orders", body, scheduled, scheduled_mono)
        if answer is not None and answer[0] == 201:
            self.created += 1
            self.waiting.append(Walk(answer[1]["id"], linked, ready_at=time.monotonic() + CHANGE_GAP))

    async def advance(self, walk: Walk, number: int, scheduled: float, scheduled_mono: float) -> None:
        path = f"/api/v1/orders/{walk.order_id}"
        if walk.uncertain:
            answer = await self.request(number, "read", "GET", path, None, scheduled, scheduled_mono)
            if answer is None or answer[0] != 200:
                self.requeue(walk)
                return
            status = answer[1]["status"]
            walk.step = WALK.index(status) + 1 if status in WALK else 0
            walk.uncertain = False
            if walk.step >= len(WALK):
                return
        target = WALK[walk.step]
        answer = await self.request(
            number, "status", "POST", f"{path}/status", {"status": target}, scheduled, scheduled_mono
        )
        if answer is not None and answer[0] == 200:
            self.changes += 1
            walk.step += 1
        elif answer is not None and answer[0] == 409 and _details(answer[1]).get("from") == target:
            walk.step += 1  # an earlier attempt whose answer was lost did it
        else:
            walk.uncertain = True
        if walk.step < len(WALK):
            self.requeue(walk)

    def requeue(self, walk: Walk) -> None:
        walk.ready_at = time.monotonic() + CHANGE_GAP
        self.waiting.append(walk)


def _details(body: Any) -> dict[str, Any]:
    if isinstance(body, dict):
        details = body.get("error", {}).get("details")
        if isinstance(details, dict):
            return details
    return {}


# --- the windows and the faults ----------------------------------------------------------------------


@dataclass
class Window:
    name: str
    fault: str | None
    start: float
    end: float
    inject: float | None = None
    healed: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def phase(self, wall: float) -> str:
        if self.inject is None or wall < self.inject:
            return "before"
        if self.healed is None or wall <= self.healed:
            return "during"
        return "after"


def window_index(windows: list[Window], wall: float) -> int:
    for number, window in enumerate(windows):
        if wall < window.end:
            return number
    return len(windows) - 1


class Soak:
    def __init__(self, options: Options, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.rng = random.Random(options.seed)
        self.api_key = f"ock_soak_{secrets.token_urlsafe(24)}"
        self.started = time.time()
        self.redis = RedisServer(workdir, append_only=options.append_only)
        self.fake_push = FakePush(workdir)
        self.streams = StreamClients(workdir)
        self.fake_bot = FakeBotAPI(enforce_limits=True, global_rate=30, chat_rate=1, tolerance=0.05)
        self.servers: list[Server] = []
        self.pools: list[Pool] = []
        self.database = ""
        self.db: asyncpg.Connection | None = None
        self.db_lock = asyncio.Lock()
        self.chats: dict[int, str] = {}  # chat id → customer id
        self.others: list[str] = []
        self.subscriptions: dict[str, str] = {}  # the fake's token → ordercast's subscription id
        self.in_flight_at_kill: set[str] = set()

    def announce(self, message: str) -> None:
        say(f"{stamp(self.started)} {message}")

    async def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        assert self.db is not None
        async with self.db_lock, asyncio.timeout(30):
            return list(await self.db.fetch(sql, *args))

    @contextlib.asynccontextmanager
    async def database_of_its_own(self) -> AsyncIterator[str]:
        name = f"ordercast_soak_{secrets.token_hex(4)}"
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        note(f"created database {name}")
        try:
            yield name
        finally:
            if self.options.keep:
                note(f"kept database {name}")
            else:
                admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout=30)
                finally:
                    await admin.close()
                note(f"dropped database {name}")

    async def run(self) -> dict[str, Any]:
        async with contextlib.AsyncExitStack() as stack:
            self.database = await stack.enter_async_context(self.database_of_its_own())
            database_url = f"postgres://postgres@{HOST}:5432/{self.database}"
            await self.redis.start()
            stack.push_async_callback(timed, "redis-server", self.redis.stop)
            note(f"redis-server on :{self.redis.port} (AOF in {self.workdir})")
            await stack.enter_async_context(running_bot(self.fake_bot))
            await self.fake_push.start()
            stack.push_async_callback(timed, "the fake push service", self.fake_push.stop)
            ports = [free_port() for _ in range(2)]
            env = {name: value for name, value in os.environ.items() if not name.startswith("ORDERCAST_")}
            env.update(
                ORDERCAST_DATABASE_URL=database_url,
                ORDERCAST_REDIS_URL=self.redis.url,
                ORDERCAST_REDIS_PREFIX=f"soak:{secrets.token_hex(4)}",
                ORDERCAST_HOST=HOST,
                # One public origin for both, as behind a load balancer: a message reads the same
                # whichever process sends it.
                ORDERCAST_BASE_URL=f"http://{HOST}:{ports[0]}",
                ORDERCAST_API_KEYS=self.api_key,
                ORDERCAST_SECRET_KEY=secrets.token_urlsafe(48),
                ORDERCAST_TELEGRAM_TOKEN=TOKEN,
                ORDERCAST_TELEGRAM_MODE="polling",
                ORDERCAST_TELEGRAM_API_URL=self.fake_bot.url,
                ORDERCAST_PUSH_ALLOW_INSECURE="true",
                ORDERCAST_LOG_LEVEL=self.options.server_log_level,
            )
            await migrate(env, self.workdir / "migrate.log")
            self.db = await asyncpg.connect(f"postgresql://postgres@{HOST}:5432/{self.database}", timeout=10)
            stack.push_async_callback(self.db.close)
            self.servers = [Server(index, port, env, self.workdir) for index, port in enumerate(ports)]
            stack.push_async_callback(self.stop_servers)
            for server in self.servers:
                await server.start()
            for server in self.servers:
                await server.ready()
            note(
                "servers ready on "
                + ", ".join(f":{server.port} (pid {server.process.pid})" for server in self.servers if server.process)
            )
            self.pools = [Pool(server.port, self.api_key) for server in self.servers]
            stack.callback(lambda: [pool.close() for pool in self.pools])
            await self.set_up_recipients()
            stack.push_async_callback(timed, "the stream clients", self.streams.stop)
            baseline = await self.start_streams()
            result = await self.soak(baseline)
        return result

    async def stop_servers(self) -> None:
        await asyncio.gather(*(timed(f"server {server.index}", server.stop) for server in self.servers))

    async def api(self, method: str, path: str, body: Any = None, expect: tuple[int, ...] = (200, 201)) -> Any:
        status, raw = await self.pools[0].call(method, path, body)
        if status not in expect:
            raise SoakFailure(f"{method} {path} answered {status}: {raw[:300]!r}")
        return orjson.loads(raw) if raw else None

    async def set_up_recipients(self) -> None:
        fake = self.fake_bot
        await until(lambda: fake.called("getUpdates"), 60, "the bot to poll the fake Bot API")
        for number in range(self.options.chats):
            chat = 10**9 + number
            customer = await self.api(
                "POST", "/api/v1/customers", {"external_id": f"soak-chat-{chat}", "name": f"Chat {number}"}
            )
            token = (await self.api("POST", f"/api/v1/customers/{customer['id']}/telegram-link"))["token"]
            await fake.say(chat, f"/start {token}")
            self.chats[chat] = customer["id"]
        await until(lambda: all(fake.messages(chat) for chat in self.chats), 90, "every linked chat's greeting")
        for number in range(self.options.customers):
            customer = await self.api(
                "POST", "/api/v1/customers", {"external_id": f"soak-{number}", "name": f"Customer {number}"}
            )
            self.others.append(customer["id"])
        key = (await self.api("GET", "/api/v1/push/vapid-public-key"))["key"]
        for _ in range(self.options.devices):
            subscription = await self.fake_push.call("POST", "/control/subscribe", {"key": key})
            created = await self.api("POST", "/api/v1/push/subscriptions", subscription)
            self.subscriptions[subscription["endpoint"].rsplit("/", 1)[1]] = created["id"]
        note(
            f"{len(self.chats)} customers linked to Telegram chats, {len(self.others)} more customers, "
            f"{len(self.subscriptions)} push subscriptions"
        )

    async def start_streams(self) -> set[str]:
        """Start the stream clients from a position read before the baseline of events: whatever is
        not in the baseline was placed after that position, so every client must receive it."""
        position = (await self.api("GET", "/api/v1/orders?limit=1"))["position"]
        baseline = {row["id"] for row in await self.query("SELECT id FROM events")}
        window = self.options.minutes * 60 / (len(FAULTS) + 1)
        spec = {
            "ports": [server.port for server in self.servers],
            "clients": self.options.clients,
            "position": position,
            "seed": self.options.seed,
            "lifetime": [max(1.0, 0.2 * window), max(2.0, window)],
            "max_seconds": self.options.minutes * 60 + self.options.drain + 600,
            "connect_within": 60,
        }
        event = await self.streams.start(spec, self.api_key)
        if event["event"] != "ready":
            raise SoakFailure(f"the stream clients did not all connect: {event}")
        note(f"{self.options.clients} stream clients connected (from position {position})")
        return baseline

    async def soak(self, baseline: set[str]) -> dict[str, Any]:
        total = self.options.minutes * 60
        length = total / (len(FAULTS) + 1)
        start = time.time() + 0.5
        load = Load(self.pools, list(self.chats.values()), self.others, self.options)
        self.announce(
            f"soak: {total:.0f} s in {len(FAULTS) + 1} windows of {length:.0f} s; {self.options.rate:g} changes/s, "
            f"{self.options.clients} stream clients, {len(self.chats)} Telegram chats, "
            f"{len(self.subscriptions)} push devices; Redis AOF {'on' if self.options.append_only else 'OFF'}"
        )
        stop = asyncio.Event()
        load_task = asyncio.create_task(load.run(start, stop, longest=3 * total + len(FAULTS) * HEAL_DEADLINE))
        windows = [Window("steady", None, start, start + length)]
        try:
            self.announce(f"window 1/{len(FAULTS) + 1}: steady")
            for number, (kind, label) in enumerate(FAULTS, start=2):
                # A window starts when the one before ends, and ends no sooner than a third of a window
                # after its fault healed: a slow recovery moves the later windows, never skips a fault.
                window = Window(label, kind, windows[-1].end, windows[-1].end + length)
                windows.append(window)
                await self.until_time(window.start, load_task)
                self.announce(f"window {number}/{len(FAULTS) + 1}: {window.name}")
                await self.until_time(window.start + length / 3, load_task)
                await self.inject(window)
                assert window.inject is not None
                assert window.healed is not None
                window.end = max(window.end, window.healed + length / 3)
                self.announce(f"  {window.name}: healed after {window.healed - window.inject:.1f} s")
            await self.until_time(windows[-1].end, load_task)
            stop.set()
            await load_task
        finally:
            if not load_task.done():
                load_task.cancel()
        self.announce(
            f"load done after {time.time() - start:.0f} s: {load.created} orders created, {load.changes} status "
            f"changes, {len(load.calls)} API calls; draining"
        )
        drained = await self.drain()
        self.announce("judging against the event log and the delivery rows")
        return await self.judge(windows, load, baseline, drained)

    @staticmethod
    async def until_time(moment: float, load_task: asyncio.Task[None]) -> None:
        """Wait until the wall clock reads `moment`; the load ending early (it failed) ends the soak."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, moment - time.time())):
                await asyncio.shield(load_task)
        if load_task.done():
            load_task.result()  # its exception, if it failed
            raise SoakFailure("the load stopped before the soak's end")

    async def inject(self, window: Window) -> None:
        window.inject = time.time()
        if window.fault == "kill":
            server = self.servers[self.rng.randrange(len(self.servers))]
            pid = server.kill()
            self.announce(f"  kill -9 server {server.index} (pid {pid}, :{server.port})")
            rows = await self.query("SELECT id FROM deliveries WHERE status = 'sending'")
            self.in_flight_at_kill = {row["id"] for row in rows}
            window.notes["in_flight_rows"] = len(self.in_flight_at_kill)
            assert server.process is not None
            await server.process.wait()
            await server.start()
            await server.ready()
            self.announce(f"  server {server.index} restarted (pid {server.process.pid}) and ready")
        elif window.fault == "redis":
            self.announce(f"  stopping redis-server :{self.redis.port}")
            await self.redis.stop()
            await asyncio.sleep(REDIS_DOWN)
            await self.redis.start()
            self.announce(f"  redis-server :{self.redis.port} back (AOF kept)")
            await self.all_ready()
        elif window.fault == "postgres":
            rows = await self.query(
                "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()",
                self.database,
            )
            window.notes["terminated"] = sum(1 for row in rows if row["done"])
            self.announce(f"  terminated {window.notes['terminated']} PostgreSQL connections of {self.database}")
            await asyncio.sleep(1.0)
            await self.all_ready()
        elif window.fault == "storm":
            self.announce(f"  opening and dropping {self.options.storm} stream connections")
            result = await self.streams.command({"cmd": "storm", "count": self.options.storm}, within=120)
            window.notes["storm"] = {key: result[key] for key in ("count", "statuses", "errors")}
            self.announce(
                f"  storm done in {result['ended'] - result['started']:.1f} s: answers {result['statuses']}, "
                f"{result['errors']} failed to connect"
            )
        window.healed = time.time()

    async def all_ready(self) -> None:
        for server in self.servers:
            assert server.process is not None
            await until(lambda server=server: self.readyz(server), HEAL_DEADLINE, f"server {server.index} /readyz")

    async def readyz(self, server: Server) -> bool:
        if server.process is not None and server.process.returncode is not None:
            raise SoakFailure(
                f"server {server.index} exited with {server.process.returncode}:\n{log_tail(server.log_path)}"
            )
        conn = None
        try:
            async with asyncio.timeout(2):
                conn = await Connection.open(HOST, server.port)
                status, _ = await conn.request("GET", "/readyz", headers=b"Connection: close\r\n")
        except (OSError, TimeoutError, HttpError, asyncio.IncompleteReadError):
            return False
        finally:
            if conn is not None:
                conn.close()
        return status == 200

    async def drain(self) -> dict[str, Any]:
        """Wait (bounded) until every event is published and no delivery is unfinished."""
        began = time.monotonic()

        async def settled() -> bool:
            unpublished = await self.query("SELECT count(*) AS n FROM events WHERE NOT published")
            unfinished = await self.query(
                "SELECT count(*) AS n FROM deliveries WHERE status = ANY($1::text[])", list(UNFINISHED)
            )
            return unpublished[0]["n"] == 0 and unfinished[0]["n"] == 0

        try:
            await until(settled, self.options.drain, "the delivery queue to drain", interval=0.5)
            drained = True
        except SoakFailure:
            drained = False
        seconds = time.monotonic() - began
        self.announce(f"  {'drained' if drained else 'NOT drained'} after {seconds:.1f} s")
        return {"drained": drained, "seconds": seconds}

    async def judge(
        self, windows: list[Window], load: Load, baseline: set[str], drained: dict[str, Any]
    ) -> dict[str, Any]:
        admin = await self.query("SELECT id FROM admin_users WHERE email = 'service'")
        me = admin[0]["id"] if admin else None
        events = await self.query("SELECT id, type, occurred_at, data FROM events ORDER BY occurred_at, id")
        expected: list[list[Any]] = []
        for row in events:
            if row["id"] in baseline:
                continue
            if row["type"].startswith("notification."):
                data = orjson.loads(row["data"]) if isinstance(row["data"], str) else row["data"]
                if data.get("user_id") not in (None, me):
                    continue  # another admin's: the server may skip it on this connection
            expected.append([row["id"], window_index(windows, row["occurred_at"].timestamp()), row["type"]])
        expected_path = self.workdir / "expected.json"
        expected_path.write_text(json.dumps(expected))
        result_path = self.workdir / "streams.json"
        boundaries = [{"name": window.name, "start": window.start, "end": window.end} for window in windows]
        await self.streams.command(
            {
                "cmd": "finish",
                "expected": str(expected_path),
                "windows": boundaries,
                "within": 30,
                "result": str(result_path),
            },
            within=180,
        )
        streams = json.loads(result_path.read_text())
        telegram = await self.judge_telegram(windows)
        push = await self.judge_push(windows)
        return self.report(windows, load, streams, telegram, push, drained, len(expected))

    async def delivery_rows(self, channel: str) -> list[asyncpg.Record]:
        return await self.query(
            "SELECT d.id, d.recipient, d.status, d.attempts, d.occurred_at, o.number, e.order_version, e.type "
            "FROM deliveries d LEFT JOIN orders o ON o.id = d.order_id LEFT JOIN events e ON e.id = d.event_id "
            "WHERE d.channel = $1 ORDER BY d.seq",
            channel,
        )

    def compare(
        self,
        windows: list[Window],
        rows: list[asyncpg.Record],
        received: dict[tuple[str, str | None], list[Any]],
    ) -> dict[str, Any]:
        """Delivery rows against what the fake received, per (recipient, order): each distinct message is
        one row (in the row order, which is the send order per recipient); a repeat is a duplicate."""
        count = len(windows)
        lost, duplicated, outside, rows_per_window = [0] * count, [0] * count, [0] * count, [0] * count
        by_status: collections.Counter[str] = collections.Counter()
        samples: list[str] = []
        groups: dict[tuple[str, str | None], list[asyncpg.Record]] = collections.defaultdict(list)
        for row in rows:
            by_status[row["status"]] += 1
            if row["status"] != "skipped":
                groups[(row["recipient"], row["number"])].append(row)
        unexpected = 0
        for key in set(groups) | set(received):
            expected_rows = sorted(groups.get(key, []), key=lambda row: (row["order_version"] or 0, row["occurred_at"]))
            messages = received.get(key, [])
            distinct = list(dict.fromkeys(messages))
            times = collections.Counter(messages)
            if len(distinct) > len(expected_rows):
                unexpected += len(distinct) - len(expected_rows)
                if len(samples) < 5:
                    samples.append(f"no row for a message to {key[0]} about {key[1]}: {distinct[-1]!r:.200}")
            for position, row in enumerate(expected_rows):
                number = window_index(windows, row["occurred_at"].timestamp())
                rows_per_window[number] += 1
                if position >= len(distinct):
                    lost[number] += 1
                    if len(samples) < 5:
                        samples.append(f"lost: {row['id']} ({row['type']}, to {row['recipient']}, {row['status']})")
                    continue
                repeats = times[distinct[position]] - 1
                if repeats > 0:
                    duplicated[number] += repeats
                    if row["id"] not in self.in_flight_at_kill:
                        outside[number] += repeats
                        if len(samples) < 5:
                            samples.append(f"duplicate of {row['id']} ({row['type']}, not in flight at the kill)")
        return {
            "rows": rows_per_window,
            "lost": lost,
            "duplicated": duplicated,
            "duplicated_outside_in_flight": outside,
            "unexpected_messages": unexpected,
            "rows_by_status": dict(by_status),
            "samples": samples,
        }

    async def judge_telegram(self, windows: list[Window]) -> dict[str, Any]:
        rows = await self.delivery_rows("telegram")
        numbers = {row["number"] for row in rows if row["number"]}
        received: dict[tuple[str, str | None], list[Any]] = collections.defaultdict(list)
        for sent in self.fake_bot.sent:
            if sent.chat_id not in self.chats:
                continue
            found = [n for n in NUMBER.findall(sent.text) if n in numbers]
            if found:
                received[(str(sent.chat_id), found[0])].append(ORIGIN.sub("<origin>", sent.text))
        result = self.compare(windows, rows, received)
        result["refused_429"] = dict(self.fake_bot.flood_control.refused)
        return result

    async def judge_push(self, windows: list[Window]) -> dict[str, Any]:
        rows = await self.delivery_rows("push")
        numbers = {row["number"] for row in rows if row["number"]}
        pushes: list[list[Any]] = []
        refused: list[Any] = []
        for _ in range(MAX_PUSH_PAGES):
            answer = await self.fake_push.call("GET", f"/control/pushes?since={len(pushes)}&limit={PUSH_PAGE}")
            pushes += answer["pushes"]
            refused = answer["refused"]
            if len(answer["pushes"]) < PUSH_PAGE:
                break
        received: dict[tuple[str, str | None], list[Any]] = collections.defaultdict(list)
        for token, title, body, url, tag, _ in pushes:
            subscription = self.subscriptions.get(token)
            if subscription is None:
                continue
            found = [n for n in NUMBER.findall(f"{title} {body} {url}") if n in numbers]
            message = (title, body, ORIGIN.sub("<origin>", url), tag)
            received[(subscription, found[0] if found else None)].append(message)
        result = self.compare(windows, rows, received)
        result["refused"] = refused
        return result

    def report(
        self,
        windows: list[Window],
        load: Load,
        streams: dict[str, Any],
        telegram: dict[str, Any],
        push: dict[str, Any],
        drained: dict[str, Any],
        expected: int,
    ) -> dict[str, Any]:
        count = len(windows)
        api: list[dict[str, Any]] = []
        for number, window in enumerate(windows):
            # Latency by when a call was scheduled; what came back by when it came (a 500 answered
            # during the terminations belongs to them, whenever the request was sent).
            calls = [call for call in load.calls if window_index(windows, call.at) == number]
            phases: dict[str, list[float]] = {"before": [], "during": [], "after": []}
            for call in calls:
                if call.outcome.isdigit():
                    phases[window.phase(call.at)].append(call.latency)
            outcomes = collections.Counter(
                call.outcome for call in load.calls if window_index(windows, call.at + call.latency) == number
            )
            api.append(
                {
                    "calls": len(calls),
                    "outcomes": dict(outcomes),
                    "5xx": {code: n for code, n in outcomes.items() if code.isdigit() and int(code) >= 500},
                    "unanswered": sum(n for code, n in outcomes.items() if not code.isdigit()),
                    "p99_ms": {
                        phase: (None if (p := percentile(values, 99)) is None else round(p * 1000, 1))
                        for phase, values in phases.items()
                    },
                }
            )
        lost, duplicated, resets = streams["lost"], streams["duplicated"], streams["resets"]
        stream_windows = []
        for number in range(count):
            per_client = [lost[client][number] for client in range(streams["clients"])]
            stream_windows.append(
                {
                    "lost": sum(per_client),
                    "clients_with_loss": sum(1 for n in per_client if n),
                    "max_lost_per_client": max(per_client, default=0),
                    "duplicated": sum(duplicated[client][number] for client in range(streams["clients"])),
                    "max_duplicated_per_client": max(
                        (duplicated[c][number] for c in range(streams["clients"])), default=0
                    ),
                    "resets": sum(resets[client][number] for client in range(streams["clients"])),
                    "refusals": streams["stream_refusals"][number],
                }
            )
        server_errors = {f"server {server.index}": server.error_lines() for server in self.servers}
        seconds: dict[int, list[Call]] = collections.defaultdict(list)
        for call in load.calls:
            seconds[int(call.at - windows[0].start)].append(call)
        timeline = [
            {
                "second": second,
                "calls": len(calls),
                "p50_ms": None if (p := percentile(answered(calls), 50)) is None else round(p * 1000, 1),
                "p99_ms": None if (p := percentile(answered(calls), 99)) is None else round(p * 1000, 1),
                "5xx": sum(1 for call in calls if call.outcome.isdigit() and int(call.outcome) >= 500),
                "unanswered": sum(1 for call in calls if not call.outcome.isdigit()),
            }
            for second, calls in sorted(seconds.items())
        ]
        result = {
            "options": {
                key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(self.options).items()
            },
            "windows": [
                {
                    "name": window.name,
                    "fault": window.fault,
                    "start": window.start,
                    "end": window.end,
                    "inject": window.inject,
                    "healed": window.healed,
                    "notes": window.notes,
                    "api": api[number],
                    "streams": stream_windows[number],
                    "telegram": {
                        key: telegram[key][number]
                        for key in ("rows", "lost", "duplicated", "duplicated_outside_in_flight")
                    },
                    "push": {
                        key: push[key][number] for key in ("rows", "lost", "duplicated", "duplicated_outside_in_flight")
                    },
                }
                for number, window in enumerate(windows)
            ],
            "overall": {
                "orders_created": load.created,
                "status_changes": load.changes,
                "api_calls": len(load.calls),
                "api_5xx": sum(sum(w["5xx"].values()) for w in api),
                "api_p99_ms": None
                if (p := percentile([c.latency for c in load.calls if c.outcome.isdigit()], 99)) is None
                else round(p * 1000, 1),
                "api_samples": load.samples,
                "events_expected": expected,
                "stream_clients": streams["clients"],
                "stream_messages": streams["messages"],
                "stream_connects": streams["connects"],
                "stream_failures": streams["failures"],
                "stream_closes": streams["closes"],
                "events_lost": sum(w["lost"] for w in stream_windows),
                "max_events_lost_per_client": max((sum(row) for row in lost), default=0),
                "events_duplicated": sum(w["duplicated"] for w in stream_windows),
                "max_events_duplicated_per_client": max((sum(row) for row in duplicated), default=0),
                "resets": sum(w["resets"] for w in stream_windows),
                "reset_reasons": streams["reset_reasons"],
                "lost_samples": streams["lost_samples"],
                "in_flight_at_kill": len(self.in_flight_at_kill),
                "telegram": {
                    **{
                        key: sum(telegram[key])
                        for key in ("rows", "lost", "duplicated", "duplicated_outside_in_flight")
                    },
                    "unexpected_messages": telegram["unexpected_messages"],
                    "rows_by_status": telegram["rows_by_status"],
                    "refused_429": telegram["refused_429"],
                    "samples": telegram["samples"],
                },
                "push": {
                    **{key: sum(push[key]) for key in ("rows", "lost", "duplicated", "duplicated_outside_in_flight")},
                    "unexpected_messages": push["unexpected_messages"],
                    "rows_by_status": push["rows_by_status"],
                    "refused": push["refused"][:5],
                    "samples": push["samples"],
                },
                "drained": drained,
                "storms": streams["storms"],
                "server_error_lines": {name: len(lines) for name, lines in server_errors.items()},
                "server_error_samples": {name: distinct_errors(lines) for name, lines in server_errors.items()},
            },
            "timeline": timeline,
        }
        return result


def answered(calls: list[Call]) -> list[float]:
    return [call.latency for call in calls if call.outcome.isdigit()]


def distinct_errors(lines: list[str], limit: int = 5) -> list[str]:
    """A few error lines, one per distinct message (times and numbers stripped for comparison)."""
    seen: dict[str, str] = {}
    for line in lines:
        key = re.sub(r"\d+", "#", line)[:160]
        seen.setdefault(key, line[:300])
    return list(seen.values())[:limit]


# --- the report ---------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def codes(counts: dict[str, int]) -> str:
    return ",".join(f"{n}×{code}" for code, n in sorted(counts.items())) or "0"


def print_report(result: dict[str, Any]) -> None:
    overall = result["overall"]
    header = (
        f"{'window':<34} {'API calls':>9} {'5xx':>9} {'no answer':>9} {'p99 ms before/during/after':>27}  "
        f"{'ev lost (max/client)':>20} {'dup':>5} {'resets':>6} {'stream 5xx':>10}  "
        f"{'tg rows/lost/dup':>16} {'push rows/lost/dup':>18}"
    )
    print()
    print(header)
    print("-" * len(header))
    for window in result["windows"]:
        api, streams, tg, push = window["api"], window["streams"], window["telegram"], window["push"]
        p99 = api["p99_ms"]
        latency = f"{ms(p99['before'])}/{ms(p99['during'])}/{ms(p99['after'])}"
        stream_5xx = {code: n for code, n in streams["refusals"].items() if code.isdigit() and int(code) >= 500}
        print(
            f"{window['name']:<34} {api['calls']:>9} {codes(api['5xx']):>9} {api['unanswered']:>9} {latency:>27}  "
            f"{streams['lost']:>10} ({streams['max_lost_per_client']:>5}) {streams['duplicated']:>5} "
            f"{streams['resets']:>6} {codes(stream_5xx):>10}  "
            f"{tg['rows']:>6}/{tg['lost']:>4}/{tg['duplicated']:>4} "
            f"{push['rows']:>8}/{push['lost']:>4}/{push['duplicated']:>4}"
        )
    tg, push = overall["telegram"], overall["push"]
    print("-" * len(header))
    print(
        f"overall: {overall['orders_created']} orders, {overall['status_changes']} status changes, "
        f"{overall['api_calls']} API calls ({overall['api_5xx']} 5xx, p99 {ms(overall['api_p99_ms'])} ms); "
        f"{overall['events_expected']} events in the log for every client"
    )
    print(
        f"streams: {overall['stream_clients']} clients, {overall['stream_connects']} connections, "
        f"{overall['stream_messages']} messages; events lost {overall['events_lost']} "
        f"(max per client {overall['max_events_lost_per_client']}), duplicated {overall['events_duplicated']} "
        f"(max per client {overall['max_events_duplicated_per_client']}), resets {overall['resets']} "
        f"{overall['reset_reasons'] or ''}"
    )
    print(f"         connections ended: {overall['stream_closes']}")
    print(
        f"telegram: {tg['rows']} delivery rows {tg['rows_by_status']}; lost {tg['lost']}, "
        f"duplicated {tg['duplicated']} ({tg['duplicated_outside_in_flight']} of rows not in flight at the kill; "
        f"{overall['in_flight_at_kill']} rows were), "
        f"messages matching no row {tg['unexpected_messages']}; 429s from the fake {tg['refused_429']}"
    )
    print(
        f"push:     {push['rows']} delivery rows {push['rows_by_status']}; lost {push['lost']}, duplicated "
        f"{push['duplicated']} ({push['duplicated_outside_in_flight']} of rows not in flight at the kill), "
        f"messages matching no row {push['unexpected_messages']}; refused by the fake {len(push['refused'])}"
    )
    drained = overall["drained"]
    print(f"drain: {'done' if drained['drained'] else 'NOT done'} in {drained['seconds']:.1f} s after the load stopped")
    for window in result["windows"]:
        if window["notes"]:
            print(f"{window['name']}: {window['notes']}")
    for label, samples in (
        ("API", overall["api_samples"]),
        ("streams", overall["lost_samples"]),
        ("telegram", tg["samples"]),
        ("push", push["samples"]),
    ):
        for sample in samples:
            print(f"  {label}: {sample}")
    for name, count in overall["server_error_lines"].items():
        if count:
            print(f"{name} logged {count} error lines, e.g.:")
            for line in overall["server_error_samples"][name]:
                print(f"    {line}")
    print(
        "p99: API calls by their scheduled time (open loop), before the fault, from injection until healed, after;"
        " '-' = none. Stream figures are summed over clients; 'ev lost' counts (client, event) pairs."
    )


async def main_async(options: Options) -> int:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    loop.add_signal_handler(signal.SIGTERM, task.cancel)
    workdir = Path(tempfile.mkdtemp(prefix="ordercast-soak-"))
    try:
        soak = Soak(options, workdir)
        try:
            result = await soak.run()
        except (SoakFailure, OSError, asyncpg.PostgresError) as exc:
            print(f"soak failed: {exc}", file=sys.stderr)
            for server in soak.servers:
                print(f"--- {server.log_path} ---\n{log_tail(server.log_path)}", file=sys.stderr)
            return 1
        print_report(result)
        if options.json_path is not None:
            options.json_path.write_text(json.dumps(result, indent=1, default=str))
            note(f"figures written to {options.json_path}")
        return 0
    finally:
        if options.keep:
            note(f"kept {workdir} (server logs, redis AOF)")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--minutes", type=float, default=10, help="length of the soak (default 10; 1 is the quick variant)"
    )
    parser.add_argument(
        "--rate", type=float, default=50, help="order changes per second over both servers (default 50)"
    )
    parser.add_argument(
        "--clients", type=int, default=200, help="stream clients, half SSE, half WebSocket (default 200)"
    )
    parser.add_argument("--chats", type=int, default=20, help="customers linked to Telegram chats (default 20)")
    parser.add_argument("--customers", type=int, default=20, help="customers without a chat (default 20)")
    parser.add_argument(
        "--linked-share",
        type=float,
        default=0.2,
        help="share of new orders for customers with a chat (default 0.2: ~8 Telegram messages/s at 50 changes/s)",
    )
    parser.add_argument("--devices", type=int, default=2, help="push subscriptions (default 2)")
    parser.add_argument("--storm", type=int, default=1000, help="connections in the disconnect storm (default 1000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--drain", type=float, default=90, help="seconds to wait for the delivery queue to drain (default 90)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the figures as JSON to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the database and the work directory (logs)")
    parser.add_argument(
        "--server-log-level", choices=["debug", "info", "warning", "error"], default="warning", help="(default warning)"
    )
    parser.add_argument(
        "--no-aof", action="store_true", help="run Redis without AOF: its restart loses history (resets expected)"
    )
    args = parser.parse_args(argv)
    if not (0.5 <= args.minutes <= 24 * 60):
        parser.error("--minutes must be in [0.5, 1440]")
    if not (1 <= args.rate <= 1000 and 2 <= args.clients <= 5000 and 1 <= args.chats <= 100):
        parser.error("--rate must be in [1, 1000], --clients in [2, 5000], --chats in [1, 100]")
    if not (1 <= args.customers <= 1000 and 0 <= args.linked_share <= 1 and 0 <= args.devices <= 20):
        parser.error("--customers must be in [1, 1000], --linked-share in [0, 1], --devices in [0, 20]")
    if not (0 <= args.storm <= 100_000 and 0 < args.drain <= 3600):
        parser.error("--storm must be in [0, 100000], --drain in (0, 3600]")
    if shutil.which("redis-server") is None:
        parser.error("redis-server is not on PATH")
    return Options(
        minutes=args.minutes,
        rate=args.rate,
        clients=args.clients,
        chats=args.chats,
        customers=args.customers,
        linked_share=args.linked_share,
        devices=args.devices,
        storm=args.storm,
        seed=args.seed,
        drain=args.drain,
        json_path=args.json.resolve() if args.json else None,
        keep=args.keep,
        append_only=not args.no_aof,
        server_log_level=args.server_log_level,
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        return asyncio.run(main_async(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the servers, Redis and the soak database are gone", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
