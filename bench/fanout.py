"""SSE fan-out: ordercast against three peers on one workload (issue 8).

Every cell is N SSE clients on one channel and R events/s for `--duration` seconds, so N x R
deliveries/s. Servers, each started fresh for each cell:

- `ordercast`       `ordercast serve`, embedded (memory) broker, one process; events are real order
                    status changes (`POST /api/v1/orders/{id}/status`); latency = receipt - `occurred_at`.
- `ordercast-redis` the same with the Redis broker (extra row).
- `sse-shared`      sse-starlette, one shared Redis subscription per process (bench/fanout_peers/sse_shared.py).
- `sse-per-conn`    the tutorial design, one Redis subscription per connection (…/sse_per_connection.py).
- `nchan`           Debian's nginx + libnginx-mod-nchan, one worker (…/nchan.conf).
The peers get a payload of the same size as ordercast's envelope, carrying its publish time, by Redis
PUBLISH or nchan's publisher endpoint; their latency = receipt - publish.

Pinning (taskset): the server — and the Redis it uses, its broker — on `--cpu-server` (0); the load
generator, the producer and this script on `--cpu-client` (1). The load generator is one uvloop process
with a minimal SSE scanner; a cell where it used >= 90 % of its core is marked client-bound. Receipt is
the kernel's receive timestamp of the read (SO_TIMESTAMPNS), so the load generator's own delays don't
count. Delivered = messages received by the end of `--drain` / (events committed x N clients); a client
that failed to connect counts as receiving nothing. `--nice -10` keeps other work on a shared machine
from taking the pinned cores (the "others" figures show how much did).

Per cell: delivered fraction, p50/p99 latency, server CPU (and its broker's), the server's CPU for the
producer's requests alone (the same rate, no clients), load-generator CPU, CPU per delivery, RSS per
idle connection ((RSS with N idle clients - RSS before) / N), and what limited it. A measurement,
not a test: exits 0 whatever the figures, non-zero only when the bench itself could not run.

    .venv/bin/python bench/fanout.py                       # all servers, all cells (~10 min)
    .venv/bin/python bench/fanout.py --servers ordercast,nchan --cells 5000x10 --duration 10
    .venv/bin/python bench/fanout.py --servers ordercast --profile /tmp/fanout-prof   # py-spy the server
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import json
import math
import os
import resource
import secrets
import shutil
import signal
import socket
import struct
import sys
import tempfile
import time
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyspy

ROOT = Path(__file__).resolve().parent.parent
SELF = Path(__file__).resolve()
PEERS = SELF.parent / "fanout_peers"
HOST = "127.0.0.1"
NCHAN_MODULE = "/usr/lib/nginx/modules/ngx_nchan_module.so"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

SERVERS = ("ordercast", "ordercast-redis", "sse-shared", "sse-per-conn", "nchan")
DEFAULT_SERVERS = SERVERS
DEFAULT_CELLS = "1000x10,5000x10,1000x50"
# ordercast's targets per cell: (clients, events/s) → p99 limit in ms; plus delivery and memory.
P99_TARGETS_MS = {(1000, 10): 100.0, (1000, 50): 100.0, (5000, 10): 250.0}
DELIVERED_TARGET = 0.999
IDLE_KB_TARGET = 20.0
CLIENT_BOUND = 0.90  # load-generator share of its core from which a cell is client-bound
NOISY = 0.25  # cores used by other processes during a window, above which the cell is flagged
NOISY_SERVER_CORE = 0.10  # … or this share of the server's own core

READY_DEADLINE = 60.0
STOP_DEADLINE = 10.0
CONNECT_DEADLINE = 120.0  # for all N clients
CONNECT_CONCURRENCY = 256
CONNECT_ATTEMPTS = 3
SOURCE_ADDRESSES = 16  # clients bind 127.0.0.2 … so that 4-tuples never run short
REQUEST_TIMEOUT = 10.0
# Requests in flight at most: enough that a slow server still gets the offered rate (the open loop holds).
PRODUCER_CONNECTIONS = 128
CREATE_CONCURRENCY = 16
MAX_IDLE = 2.0  # seconds a pooled keep-alive connection may sit unused
MAX_HEAD = 64 * 1024
MAX_PARTIAL = 4 * 1024 * 1024  # an SSE message longer than this is a broken stream
MAX_LATENCIES = 20_000_000
CUSTOMERS = 8
# ordercast's longest walk of statuses: 6 changes per order.
WALK = ("paid", "accepted", "packing", "dispatched", "delivered", "refunded")
# An order.status_changed envelope of a one-item order is 549 bytes; the peers get the same.
PAYLOAD_BYTES = 549


# ───────────────────────────── shared helpers ─────────────────────────────


def raise_nofile() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), 0 once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except OSError:
        return 0


def child_pids(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def machine_busy(cpu: int | None = None) -> float:
    """Busy CPU seconds so far of the whole machine, or of one CPU (from /proc/stat; steal counts as busy)."""
    name = "cpu" if cpu is None else f"cpu{cpu}"
    for line in Path("/proc/stat").read_text().splitlines():
        fields = line.split()
        if fields[0] == name:
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
            return (user + nice + system + irq + softirq + steal) / CLK_TCK
    return 0.0


def percentile(ordered: Sequence[float], q: float) -> float:
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def emit(event: str, **fields: Any) -> None:
    """One JSON line to the orchestrator (the roles' only use of stdout)."""
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_HEAD)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def next_command(reader: asyncio.StreamReader) -> dict[str, Any]:
    line = await reader.readline()
    if not line:
        return {"cmd": "exit"}
    command: dict[str, Any] = json.loads(line)
    return command


def install_uvloop() -> None:
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


class HttpError(Exception):
    """A response that could not be read as HTTP/1.1."""


class HttpConnection:
    """A minimal keep-alive HTTP/1.1 client connection (one request at a time, Content-Length bodies)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        self._reader = reader
        self._writer = writer
        self._host = f"Host: {HOST}:{port}\r\n".encode()
        self.last_used = time.monotonic()

    @classmethod
    async def open(cls, port: int) -> HttpConnection:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), REQUEST_TIMEOUT)
        return cls(reader, writer, port)

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: bytes = b""
    ) -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self._host + headers
        if body is not None:
            head += b"Content-Length: %d\r\n" % len(body)
        self._writer.write(head + b"\r\n" + (body or b""))
        async with asyncio.timeout(REQUEST_TIMEOUT):
            raw = await self._reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[1].isdigit():
                raise HttpError(f"bad status line {lines[0]!r}")
            length = None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length is None:
                raise HttpError("no Content-Length")
            answer = await self._reader.readexactly(length)
        self.last_used = time.monotonic()
        return int(parts[1]), answer

    def close(self) -> None:
        self._writer.close()


class HttpPool:
    """Keep-alive connections to one port, opened as needed up to `size`."""

    def __init__(self, port: int, size: int) -> None:
        self._port = port
        self._idle: list[HttpConnection] = []
        self._slots = asyncio.Semaphore(size)

    async def request(
        self, method: str, path: str, body: bytes | None = None, headers: bytes = b""
    ) -> tuple[int, bytes]:
        async with self._slots:
            # uvicorn closes a keep-alive connection idle for 5 s: don't reuse one that may be closing.
            while self._idle and time.monotonic() - self._idle[-1].last_used > MAX_IDLE:
                self._idle.pop().close()
            connection = self._idle.pop() if self._idle else await HttpConnection.open(self._port)
            try:
                result = await connection.request(method, path, body, headers)
            except BaseException:
                connection.close()
                raise
            self._idle.append(connection)
            return result

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()


# ───────────────────────────── role: load generator ─────────────────────────────

_OCCURRED = b'"occurred_at":"'
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
TIMESPEC = struct.Struct("@qq")
ANCILLARY_SIZE = socket.CMSG_SPACE(TIMESPEC.size)
RECV_SIZE = 65536
_STATUS_CHANGED = b'order.status_changed",'
_PEER_STAMP = b'data: {"t":'


class Tally:
    """What all clients of the load generator count during the measured window."""

    def __init__(self) -> None:
        self.active = False
        self.t0 = 0.0
        self.count = 0
        self.latencies: array[float] = array("d")
        self.stamps: dict[bytes, float] = {}
        self.closed = 0
        self.malformed = 0
        self.expected = MAX_LATENCIES
        self.reached = asyncio.Event()

    def start(self, t0: float) -> None:
        self.t0 = t0
        self.count = 0
        self.latencies = array("d")
        self.active = True

    def expect(self, count: int) -> None:
        """Set `reached` once `count` messages were counted in the window."""
        self.expected = count
        if self.count >= count:
            self.reached.set()


def _parse_occurred_at(text: bytes) -> float:
    try:
        return datetime.strptime(text.decode(), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return math.nan


def scan_ordercast(data: bytes, end: int, now: float, tally: Tally) -> int:
    """Count `order.status_changed` messages in `data[:end]`, recording receipt - occurred_at."""
    found = 0
    position = 0
    stamps = tally.stamps
    latencies = tally.latencies
    while True:
        at = data.find(_OCCURRED, position, end)
        if at < 0:
            return found
        start = at + 15
        key = data[start : start + 27]
        stamp = stamps.get(key)
        if stamp is None:
            stamp = stamps[key] = _parse_occurred_at(key)
        position = start + 27
        if stamp >= tally.t0 and data[at - 22 : at] == _STATUS_CHANGED and len(latencies) < MAX_LATENCIES:
            latencies.append(now - stamp)
            found += 1
        elif stamp != stamp:  # NaN: not a timestamp
            tally.malformed += 1


def scan_peer(data: bytes, end: int, now: float, tally: Tally) -> int:
    """Count peer messages (`data: {"t":<publish time>,…`) in `data[:end]`, recording receipt - t."""
    found = 0
    position = 0
    latencies = tally.latencies
    while True:
        at = data.find(_PEER_STAMP, position, end)
        if at < 0:
            return found
        start = at + 11
        comma = data.find(b",", start, end)
        position = start
        try:
            stamp = float(data[start:comma])
        except ValueError:
            tally.malformed += 1
            continue
        if stamp >= tally.t0 and len(latencies) < MAX_LATENCIES:
            latencies.append(now - stamp)
            found += 1


Scanner = Callable[[bytes, int, float, Tally], int]


class SseClient:
    """One SSE connection on a raw non-blocking socket: checks the status line, then scans whole messages.

    Read with `recvmsg` and SO_TIMESTAMPNS, so a message's receipt time is when the kernel queued it on the
    socket, not when this process got round to reading it: a busy load generator delays its reads, not
    its figures (at 5,000 clients one event is a burst of 5,000 reads, tens of ms of work).
    """

    def __init__(self, request: bytes, tally: Tally, scan: Scanner, blank_line: bytes) -> None:
        self.request = request
        self.blank_line = blank_line
        self.tally = tally
        self.scan = scan
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.head_done = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.received = 0

    async def connect(self, port: int, source: str) -> None:
        loop = asyncio.get_running_loop()
        sock = self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.bind((source, 0))
        await loop.sock_connect(sock, (HOST, port))
        sock.send(self.request)
        loop.add_reader(sock.fileno(), self.on_readable)
        await self.ready

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError, ValueError):
                asyncio.get_running_loop().remove_reader(self.sock.fileno())
            self.sock.close()
            self.sock = None

    def on_readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data, ancillary, _, _ = sock.recvmsg(RECV_SIZE, ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.lost(exc)
            return
        if not data:
            self.lost(None)
            return
        if ancillary:  # the one control message asked for: SO_TIMESTAMPNS
            seconds, nanoseconds = TIMESPEC.unpack_from(ancillary[0][2])
            now = seconds + nanoseconds * 1e-9
        else:
            now = time.time()
        if self.buffer:
            data = self.buffer + data
            self.buffer = b""
        if not self.head_done:
            head_end = data.find(b"\r\n\r\n")
            if head_end < 0:
                if len(data) > MAX_HEAD:
                    self.fail("response head too long")
                else:
                    self.buffer = data
                return
            status = data[: data.find(b"\r\n")]
            if not status.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                self.fail(status.decode("latin-1"))
                return
            self.head_done = True
            if not self.ready.done():
                self.ready.set_result(None)
            data = data[head_end + 4 :]
        # A message ends with a blank line: "\n\n" (ordercast, nchan) or "\r\n\r\n" (sse-starlette).
        end = data.rfind(self.blank_line) + len(self.blank_line)
        if end < len(self.blank_line):
            if len(data) > MAX_PARTIAL:
                self.fail("message too long")
            else:
                self.buffer = data
            return
        if end < len(data):
            self.buffer = data[end:]
        tally = self.tally
        if tally.active:
            found = self.scan(data, end, now, tally)
            self.received += found
            tally.count += found
            if tally.count >= tally.expected:
                tally.reached.set()

    def lost(self, exc: Exception | None) -> None:
        if self.head_done:
            self.tally.closed += 1
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before the response: {exc}"))
        self.close()

    def fail(self, reason: str) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(reason))
        self.close()


async def run_loadgen(spec: dict[str, Any]) -> None:
    tally = Tally()
    scan: Scanner = scan_ordercast if spec["mode"] == "ordercast" else scan_peer
    headers = "".join(f"{line}\r\n" for line in spec["headers"])
    request = (
        f"GET {spec['path']} HTTP/1.1\r\nHost: {HOST}:{spec['port']}\r\nAccept: text/event-stream\r\n{headers}\r\n"
    )
    slots = asyncio.Semaphore(CONNECT_CONCURRENCY)
    errors: collections.Counter[str] = collections.Counter()

    async def connect(index: int) -> SseClient | None:
        source = f"127.0.0.{2 + index % SOURCE_ADDRESSES}"
        async with slots:
            for attempt in range(CONNECT_ATTEMPTS):
                client = SseClient(request.encode(), tally, scan, spec["blank_line"].encode())
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT):
                        await client.connect(spec["port"], source)
                    return client
                except (OSError, TimeoutError) as exc:
                    errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    client.close()
                    await asyncio.sleep(0.2 * (attempt + 1))
            return None

    started = time.monotonic()
    async with asyncio.timeout(CONNECT_DEADLINE):
        results = await asyncio.gather(*(connect(i) for i in range(spec["clients"])))
    clients = [client for client in results if client is not None]
    emit(
        "connected",
        ok=len(clients),
        failed=spec["clients"] - len(clients),
        seconds=round(time.monotonic() - started, 2),
        errors=dict(errors.most_common(3)),
    )
    commands = await stdin_lines()
    while True:
        command = await next_command(commands)
        if command["cmd"] == "start":
            for client in clients:
                client.received = 0
            tally.start(command["t0"])
            emit("started")
        elif command["cmd"] == "finish":
            expected, deadline = command["expected"], time.monotonic() + command["drain"]
            finished = time.monotonic()
            tally.expect(expected)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(tally.reached.wait(), max(0.0, deadline - time.monotonic()))
            tally.active = False
            drained = time.monotonic() - finished
            ordered = sorted(tally.latencies)
            counts = [client.received for client in clients]
            emit(
                "result",
                received=tally.count,
                p50=percentile(ordered, 0.50),
                p90=percentile(ordered, 0.90),
                p99=percentile(ordered, 0.99),
                max=ordered[-1] if ordered else math.nan,
                drain=round(drained, 2),
                closed=tally.closed,
                malformed=tally.malformed,
                min_per_client=min(counts, default=0),
                max_per_client=max(counts, default=0),
            )
        else:
            break
    for client in clients:
        client.close()


# ───────────────────────────── role: producer ─────────────────────────────


def peer_payload(stamp: float, sequence: int, size: int) -> bytes:
    head = b'{"t":%.6f,"s":%d,"type":"order.status_changed","pad":"' % (stamp, sequence)
    return head + b"x" * max(0, size - len(head) - 2) + b'"}'


async def run_producer(spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    kind: str = spec["kind"]
    pool = HttpPool(spec["port"], PRODUCER_CONNECTIONS)
    auth = f"Authorization: Bearer {spec.get('api_key', '')}\r\nContent-Type: application/json\r\n".encode()
    ready: collections.deque[tuple[str, int]] = collections.deque()
    redis_client: Any = None
    sequence = 0
    errors: collections.Counter[str] = collections.Counter()

    if kind == "ordercast":
        customers = []
        for index in range(CUSTOMERS):
            body = json.dumps({"external_id": f"fanout-{index}", "name": f"Fanout customer {index}"}).encode()
            status, answer = await pool.request("POST", "/api/v1/customers", body, auth)
            if status not in (200, 201):
                raise HttpError(f"creating a customer: {status} {answer[:200]!r}")
            customers.append(json.loads(answer)["id"])

        async def create(index: int) -> None:
            item = {"sku": "SKU-1", "name": "Bench item", "quantity": 1, "unit_price": "9.90"}
            body = {"customer_id": customers[index % len(customers)], "currency": "EUR", "items": [item]}
            status, answer = await pool.request("POST", "/api/v1/orders", json.dumps(body).encode(), auth)
            if status != 201:
                raise HttpError(f"creating an order: {status} {answer[:200]!r}")
            ready.append((json.loads(answer)["id"], 0))

        for first in range(0, spec["orders"], CREATE_CONCURRENCY):
            await asyncio.gather(*(create(i) for i in range(first, min(spec["orders"], first + CREATE_CONCURRENCY))))
    elif kind == "redis":
        import redis.asyncio as redis

        redis_client = redis.Redis.from_url(spec["redis_url"])
        await redis_client.ping()
    emit("ready", orders=len(ready))

    inflight = asyncio.Semaphore(PRODUCER_CONNECTIONS)

    async def produce_one(tally: dict[str, Any]) -> None:
        async with inflight:
            await produce(tally)

    async def produce(tally: dict[str, Any]) -> None:
        nonlocal sequence
        sent = time.monotonic()
        try:
            if kind == "ordercast":
                if not ready:
                    tally["starved"] += 1
                    return
                order, step = ready.popleft()
                body = b'{"status": "%s"}' % WALK[step].encode()
                status, answer = await pool.request("POST", f"/api/v1/orders/{order}/status", body, auth)
                if status != 200:
                    errors[f"{status} {answer[:100]!r}"] += 1
                    return
                if step + 1 < len(WALK):
                    ready.append((order, step + 1))
            else:
                sequence += 1
                payload = peer_payload(time.time(), sequence, spec["payload_bytes"])
                if kind == "redis":
                    await redis_client.publish(spec["channel"], payload)
                else:
                    status, answer = await pool.request("POST", "/pub", payload)
                    if status not in (201, 202):
                        errors[f"{status} {answer[:100]!r}"] += 1
                        return
            tally["ok"] += 1
            tally["latencies"].append(time.monotonic() - sent)
        except Exception as exc:
            errors[f"{type(exc).__name__}: {exc}"[:120]] += 1

    commands = await stdin_lines()
    while True:
        command = await next_command(commands)
        if command["cmd"] != "run":
            break
        rate, duration = float(command["rate"]), float(command["duration"])
        tally: dict[str, Any] = {"ok": 0, "starved": 0, "latencies": []}
        errors.clear()
        total = int(rate * duration)
        tasks: set[asyncio.Task[None]] = set()
        begin = loop.time()
        max_behind = 0.0
        for index in range(total):
            delay = begin + index / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            max_behind = max(max_behind, -delay)
            task = asyncio.create_task(produce_one(tally))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks, timeout=REQUEST_TIMEOUT + 5)
        ordered = sorted(tally["latencies"])
        emit(
            "done",
            sent=total,
            ok=tally["ok"],
            starved=tally["starved"],
            errors=dict(errors.most_common(3)),
            seconds=round(loop.time() - begin, 3),
            max_behind=round(max_behind, 3),
            request_p99=percentile(ordered, 0.99),
        )
    pool.close()
    if redis_client is not None:
        await redis_client.aclose()


# ───────────────────────────── orchestrator: processes ─────────────────────────────

_prctl = ctypes.CDLL(None, use_errno=True).prctl
PR_SET_PDEATHSIG = 1


CHILD_NICE = 0  # set from --nice before any child starts


def _child_setup() -> None:
    """In each child before exec: die with the bench (even on kill -9), may open many files, and --nice."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    raise_nofile()
    if CHILD_NICE:
        os.setpriority(os.PRIO_PROCESS, 0, CHILD_NICE)


class BenchFailure(Exception):
    """The bench could not measure a cell (a server didn't start, a role failed, …)."""


class Children:
    """Every process the bench starts, so that each is stopped whatever happens."""

    def __init__(self) -> None:
        self.running: list[asyncio.subprocess.Process] = []

    async def spawn(
        self,
        cpu: int,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        log: Path,
        pipes: bool = False,
        cwd: Path = ROOT,
    ) -> asyncio.subprocess.Process:
        with log.open("ab") as log_file:
            process = await asyncio.create_subprocess_exec(
                "taskset",
                "-c",
                str(cpu),
                *args,
                env=env,
                cwd=cwd,
                stdin=asyncio.subprocess.PIPE if pipes else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if pipes else log_file,
                stderr=log_file,
                start_new_session=True,
                preexec_fn=_child_setup,
                limit=MAX_HEAD,
            )
        self.running.append(process)
        return process

    async def stop(self, process: asyncio.subprocess.Process, deadline: float = STOP_DEADLINE) -> None:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            try:
                await asyncio.wait_for(process.wait(), deadline)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if process in self.running:
            self.running.remove(process)

    async def stop_all(self) -> None:
        for process in reversed(list(self.running)):
            await self.stop(process)


class Role:
    """A load-generator or producer child: JSON commands on its stdin, JSON events on its stdout."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    async def send(self, **command: Any) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()

    async def expect(self, event: str, within: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        async with asyncio.timeout(within):
            while True:
                line = await self.process.stdout.readline()
                if not line:
                    raise BenchFailure(f"the {self.name} exited ({self.process.returncode}):\n{tail(self.log)}")
                with contextlib.suppress(json.JSONDecodeError):
                    message: dict[str, Any] = json.loads(line)
                    if message.get("event") == event:
                        return message

    async def close(self, children: Children) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            with contextlib.suppress(OSError, RuntimeError):
                await self.send(cmd="exit")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.process.wait(), 5)
        await children.stop(self.process)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def wait_http(port: int, path: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise BenchFailure(f"the server exited ({process.returncode}):\n{tail(log)}")
        with contextlib.suppress(OSError, TimeoutError, HttpError, asyncio.IncompleteReadError):
            connection = await HttpConnection.open(port)
            try:
                status, _ = await connection.request("GET", path)
            finally:
                connection.close()
            if status == 200:
                return
        await asyncio.sleep(0.2)
    raise BenchFailure(f"the server on port {port} was not ready within {READY_DEADLINE:.0f} s:\n{tail(log)}")


# ───────────────────────────── orchestrator: servers ─────────────────────────────


@dataclass(frozen=True)
class Options:
    servers: tuple[str, ...]
    cells: tuple[tuple[int, float], ...]
    duration: float
    calibrate: float
    settle: float
    drain: float
    cpu_server: int
    cpu_client: int
    payload_bytes: int
    connection_queue: int
    profile_dir: Path | None
    json_path: Path | None
    wait_idle: float
    ordercast_src: Path
    nice: int


@dataclass
class Running:
    """A started server: which processes are "the server", where its stream is, how to produce."""

    name: str
    server_pids: list[int]
    rss_pid: int
    port: int
    path: str
    headers: list[str]
    mode: str  # "ordercast" (latency from occurred_at) or "peer" (from the publish time)
    blank_line: str  # what ends an SSE message: "\n\n", or "\r\n\r\n" (sse-starlette)
    producer: dict[str, Any]
    python: bool
    main: asyncio.subprocess.Process
    log: Path


@dataclass
class Redis:
    url: str
    pid: int


async def start_redis(children: Children, options: Options, workdir: Path) -> Redis:
    """The bench's own redis-server, on the server's core (it is part of the server side)."""
    port = free_port()
    log = workdir / "redis.log"
    process = await children.spawn(
        options.cpu_server,
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxclients",
            "16000",
            "--dir",
            str(workdir),
        ],
        log=log,
    )
    deadline = time.monotonic() + READY_DEADLINE
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise BenchFailure(f"redis-server exited:\n{tail(log)}")
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"PING\r\n")
            answer = await asyncio.wait_for(reader.readline(), 2)
            writer.close()
            if answer.startswith(b"+PONG"):
                return Redis(f"redis://{HOST}:{port}/0", process.pid)
        await asyncio.sleep(0.1)
    raise BenchFailure("redis-server did not answer")


def base_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not name.startswith(("ORDERCAST_", "FANOUT_"))}


async def start_ordercast(
    children: Children, options: Options, workdir: Path, redis: Redis | None, orders: int
) -> Running:
    port = free_port()
    key = f"ock_{secrets.token_hex(16)}"
    log = workdir / "server.log"
    env = base_env()
    env.update(
        ORDERCAST_DATABASE_URL=f"sqlite://{workdir}/bench.db",
        ORDERCAST_PORT=str(port),
        ORDERCAST_API_KEYS=key,
        ORDERCAST_TELEGRAM_MODE="off",
        ORDERCAST_LOG_LEVEL="warning",
        ORDERCAST_CONNECTION_QUEUE=str(options.connection_queue),
        ORDERCAST_PING_INTERVAL="15",
    )
    if redis is not None:
        env.update(ORDERCAST_REDIS_URL=redis.url, ORDERCAST_REDIS_PREFIX=f"fanout{secrets.token_hex(4)}")
    # `-m` puts the working directory first on sys.path: that checkout's `ordercast` is the one served.
    env["PYTHONPATH"] = str(options.ordercast_src)
    process = await children.spawn(
        options.cpu_server, [python(), "-m", "ordercast", "serve"], env=env, log=log, cwd=options.ordercast_src
    )
    await wait_http(port, "/readyz", process, log)
    return Running(
        name="ordercast" if redis is None else "ordercast-redis",
        server_pids=[process.pid],
        rss_pid=process.pid,
        port=port,
        path="/api/v1/events",
        headers=[f"Authorization: Bearer {key}"],
        mode="ordercast",
        blank_line="\n\n",
        producer={"kind": "ordercast", "port": port, "api_key": key, "orders": orders},
        python=True,
        main=process,
        log=log,
    )


async def start_python_peer(
    children: Children, options: Options, workdir: Path, redis: Redis, name: str, script: str
) -> Running:
    port = free_port()
    channel = f"fanout-{secrets.token_hex(4)}"
    log = workdir / "server.log"
    env = base_env()
    env.update(FANOUT_PORT=str(port), FANOUT_REDIS_URL=redis.url, FANOUT_CHANNEL=channel, FANOUT_PING_INTERVAL="15")
    process = await children.spawn(options.cpu_server, [python(), str(PEERS / script)], env=env, log=log)
    await wait_http(port, "/healthz", process, log)
    return Running(
        name=name,
        server_pids=[process.pid],
        rss_pid=process.pid,
        port=port,
        path="/events",
        headers=[],
        mode="peer",
        blank_line="\r\n\r\n",
        producer={"kind": "redis", "redis_url": redis.url, "channel": channel, "port": port},
        python=True,
        main=process,
        log=log,
    )


async def start_nchan(children: Children, options: Options, workdir: Path) -> Running:
    port = free_port()
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    config = (PEERS / "nchan.conf").read_text()
    for placeholder, value in {
        "@@MODULE@@": NCHAN_MODULE,
        "@@NOFILE@@": str(nofile),
        "@@CONNECTIONS@@": str(max(1024, nofile - 100)),
        "@@DIR@@": str(workdir),
        "@@PORT@@": str(port),
        "@@PING@@": "15",
    }.items():
        config = config.replace(placeholder, value)
    (workdir / "nginx.conf").write_text(config)
    log = workdir / "server.log"
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    args = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", str(workdir / "error.log")]
    process = await children.spawn(options.cpu_server, args, log=log)
    await wait_http(port, "/healthz", process, log)
    workers = child_pids(process.pid)
    if len(workers) != 1:
        raise BenchFailure(f"expected one nginx worker, found {workers}")
    return Running(
        name="nchan",
        server_pids=[process.pid, workers[0]],
        rss_pid=workers[0],
        port=port,
        path="/events",
        headers=[],
        mode="peer",
        blank_line="\n\n",
        producer={"kind": "nchan", "port": port},
        python=False,
        main=process,
        log=log,
    )


# ───────────────────────────── orchestrator: cells ─────────────────────────────


@dataclass
class Row:
    server: str
    clients: int
    rate: float
    delivered: float = math.nan
    expected: int = 0
    received: int = 0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    server_cpu: float = math.nan  # cores (1.0 = one core) over the window
    broker_cpu: float = math.nan
    producer_only_cpu: float = math.nan  # server (+ broker) CPU at the same event rate with no clients
    loadgen_cpu: float = math.nan
    producer_cpu: float = math.nan
    other_cpu: float = math.nan  # everything else on the machine
    other_server_core: float = math.nan  # everything else on the server's CPU (other work, steal)
    us_per_delivery: float = math.nan
    idle_kb: float = math.nan
    events_ok: int = 0
    events_scheduled: int = 0
    closed: int = 0
    connect_failed: int = 0
    connect_errors: dict[str, int] = field(default_factory=dict)
    drain_s: float = math.nan
    min_per_client: int = 0
    producer_p99_ms: float = math.nan
    limit: str = ""
    failure: str = ""
    profile: list[tuple[str, float, float]] = field(default_factory=list)


async def wait_quiet(limit: float) -> float:
    """Wait up to `limit` s for the machine to be quiet (others < NOISY cores over 1 s); the last reading."""
    deadline = time.monotonic() + limit
    while True:
        busy = machine_busy()
        await asyncio.sleep(1.0)
        load = machine_busy() - busy
        if load < NOISY or time.monotonic() >= deadline:
            return load


class Bench:
    def __init__(self, options: Options, children: Children, workdir: Path) -> None:
        self.options = options
        self.children = children
        self.workdir = workdir
        self.redis: Redis | None = None

    async def run_cell(self, server: str, clients: int, rate: float) -> Row:
        options = self.options
        row = Row(server, clients, rate)
        cell_dir = Path(tempfile.mkdtemp(prefix=f"{server}-{clients}x{rate:g}-", dir=self.workdir))
        needs_redis = server in ("ordercast-redis", "sse-shared", "sse-per-conn")
        if needs_redis and self.redis is None:
            self.redis = await start_redis(self.children, options, self.workdir)
        # Each order takes len(WALK) changes, one at a time: enough for both runs and every request in flight.
        orders = math.ceil(rate * (options.calibrate + options.duration) / len(WALK) * 1.1) + PRODUCER_CONNECTIONS + 8
        if server in ("ordercast", "ordercast-redis"):
            running = await start_ordercast(
                self.children, options, cell_dir, self.redis if server == "ordercast-redis" else None, orders
            )
        elif server == "sse-shared":
            assert self.redis is not None
            running = await start_python_peer(self.children, options, cell_dir, self.redis, server, "sse_shared.py")
        elif server == "sse-per-conn":
            assert self.redis is not None
            running = await start_python_peer(
                self.children, options, cell_dir, self.redis, server, "sse_per_connection.py"
            )
        else:
            running = await start_nchan(self.children, options, cell_dir)
        broker_pids = [self.redis.pid] if needs_redis and self.redis is not None else []
        producer: Role | None = None
        loadgen: Role | None = None
        try:
            spec = {**running.producer, "payload_bytes": options.payload_bytes}
            producer = await self.role("producer", "_produce", spec, cell_dir)
            await producer.expect("ready", READY_DEADLINE)

            # The server's CPU for producing alone: the same event rate, no clients.
            before = self.cpu(running.server_pids + broker_pids)
            await producer.send(cmd="run", rate=rate, duration=options.calibrate)
            await producer.expect("done", options.calibrate + REQUEST_TIMEOUT + 10)
            row.producer_only_cpu = (self.cpu(running.server_pids + broker_pids) - before) / options.calibrate
            await asyncio.sleep(0.5)

            rss_before = rss_bytes(running.rss_pid)
            loadgen_spec = {
                "port": running.port,
                "path": running.path,
                "headers": running.headers,
                "clients": clients,
                "mode": running.mode,
                "blank_line": running.blank_line,
            }
            loadgen = await self.role("load generator", "_loadgen", loadgen_spec, cell_dir)
            connected = await loadgen.expect("connected", CONNECT_DEADLINE + 10)
            row.connect_failed = connected["failed"]
            row.connect_errors = connected["errors"]
            if connected["ok"] == 0:
                raise BenchFailure(f"no client connected: {connected['errors']}")
            await asyncio.sleep(options.settle)
            row.idle_kb = (rss_bytes(running.rss_pid) - rss_before) / connected["ok"] / 1024

            profiler = await self.start_profile(running, clients, rate, cell_dir)
            watched = {
                "server": running.server_pids,
                "broker": broker_pids,
                "loadgen": [loadgen.pid],
                "producer": [producer.pid],
                "bench": [os.getpid()],
            }
            start_cpu = {name: self.cpu(pids) for name, pids in watched.items()}
            start_busy, start_wall = machine_busy(), time.monotonic()
            start_core = machine_busy(options.cpu_server)
            await loadgen.send(cmd="start", t0=time.time())
            await loadgen.expect("started", 10)
            await producer.send(cmd="run", rate=rate, duration=options.duration)
            done = await producer.expect("done", options.duration + REQUEST_TIMEOUT + 10)
            wall = time.monotonic() - start_wall
            used = {name: (self.cpu(pids) - start_cpu[name]) / wall for name, pids in watched.items()}
            row.other_cpu = max(0.0, (machine_busy() - start_busy) / wall - sum(used.values()))
            core = (machine_busy(options.cpu_server) - start_core) / wall
            row.other_server_core = max(0.0, core - used["server"] - used["broker"])
            row.server_cpu, row.broker_cpu = used["server"], used["broker"]
            row.loadgen_cpu, row.producer_cpu = used["loadgen"], used["producer"]
            row.events_ok, row.producer_p99_ms = done["ok"], done["request_p99"] * 1000
            row.events_scheduled = done["sent"]
            if done["errors"] or done["starved"]:
                row.failure = f"producer: {done['errors']} starved={done['starved']}"

            row.expected = done["ok"] * connected["ok"]
            await loadgen.send(cmd="finish", expected=row.expected, drain=options.drain)
            result = await loadgen.expect("result", options.drain + 60)
            row.received = result["received"]
            row.delivered = row.received / (done["ok"] * clients) if done["ok"] else math.nan
            row.p50_ms, row.p99_ms, row.max_ms = (result[k] * 1000 for k in ("p50", "p99", "max"))
            row.closed, row.drain_s, row.min_per_client = result["closed"], result["drain"], result["min_per_client"]
            if row.received:
                # Everything the server side spent until the last delivery (the drain too), less the
                # producer's share: the fan-out's own cost.
                spent = self.cpu(running.server_pids + broker_pids) - start_cpu["server"] - start_cpu["broker"]
                fan_out = spent - row.producer_only_cpu * wall
                row.us_per_delivery = max(0.0, fan_out) / row.received * 1e6
            row.limit = limit_of(row)
            if profiler is not None:
                row.profile = await self.finish_profile(*profiler)
        finally:
            for role in (loadgen, producer):
                if role is not None:
                    await role.close(self.children)
            await self.children.stop(running.main)
        return row

    def cpu(self, pids: list[int]) -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    async def role(self, name: str, flag: str, spec: dict[str, Any], cell_dir: Path) -> Role:
        log = cell_dir / f"{flag.strip('_')}.log"
        args = [python(), str(SELF), flag, json.dumps(spec)]
        process = await self.children.spawn(self.options.cpu_client, args, log=log, pipes=True)
        return Role(name, process, log)

    async def start_profile(
        self, running: Running, clients: int, rate: float, cell_dir: Path
    ) -> tuple[asyncio.subprocess.Process, Path] | None:
        if self.options.profile_dir is None or not running.python:
            return None
        executable = pyspy.executable()
        if executable is None:
            print("  (py-spy not found: .venv/bin/pip install py-spy)", file=sys.stderr)
            return None
        self.options.profile_dir.mkdir(parents=True, exist_ok=True)
        output = self.options.profile_dir / f"{running.name}-{clients}x{rate:g}.txt"
        # Non-blocking: pausing the server to sample it would add to the latencies being measured.
        args = pyspy.record_command(executable, running.rss_pid, self.options.duration, output, nonblocking=True)
        process = await self.children.spawn(self.options.cpu_client, args, log=cell_dir / "py-spy.log")
        return process, output

    async def finish_profile(self, process: asyncio.subprocess.Process, output: Path) -> list[tuple[str, float, float]]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 20)
        await self.children.stop(process)
        return pyspy.top_functions(output)[1]


def limit_of(row: Row) -> str:
    """A first reading of what limited the cell."""
    reasons = []
    if row.loadgen_cpu >= CLIENT_BOUND:
        reasons.append(f"CLIENT-BOUND (load generator {row.loadgen_cpu:.0%})")
    server_core = row.server_cpu + row.broker_cpu
    if server_core >= 0.9:
        reasons.append(f"server core saturated ({server_core:.0%})")
    if row.other_cpu >= NOISY or row.other_server_core >= NOISY_SERVER_CORE:
        reasons.append(
            f"noisy machine (others: {row.other_cpu:.2f} cores, {row.other_server_core:.0%} of the server's core)"
        )
    if row.closed:
        reasons.append(f"{row.closed} streams cut")
    if not reasons:
        reasons.append("headroom: latency is per-event work, not saturation")
    return "; ".join(reasons)


# ───────────────────────────── output ─────────────────────────────

HEADER = (
    f"{'server':<16}{'cell':>10}{'delivered':>11}{'p50 ms':>9}{'p99 ms':>9}{'srv CPU':>9}{'broker':>8}"
    f"{'prod-only':>10}{'LG CPU':>8}{'µs/dlv':>8}{'KB/idle':>9}  limit / notes"
)


def fmt(value: float, spec: str) -> str:
    return "—" if value != value else format(value, spec)


def format_row(row: Row) -> str:
    cell = f"{row.clients}×{row.rate:g}/s"
    if row.failure and row.delivered != row.delivered:
        return f"{row.server:<16}{cell:>10}  FAILED: {row.failure}"
    notes = [row.limit]
    if row.server.startswith("ordercast"):
        notes.append(target_note(row))
    if row.connect_failed:
        notes.append(f"{row.connect_failed} clients failed to connect ({row.connect_errors})")
    if row.failure:
        notes.append(row.failure)
    broker = fmt(row.broker_cpu, ".0%") if row.server in ("ordercast-redis", "sse-shared", "sse-per-conn") else ""
    return (
        f"{row.server:<16}{cell:>10}{fmt(row.delivered * 100, '.2f') + ' %':>11}{fmt(row.p50_ms, '.1f'):>9}"
        f"{fmt(row.p99_ms, '.1f'):>9}{fmt(row.server_cpu, '.0%'):>9}{broker:>8}{fmt(row.producer_only_cpu, '.1%'):>10}"
        f"{fmt(row.loadgen_cpu, '.0%'):>8}{fmt(row.us_per_delivery, '.1f'):>8}{fmt(row.idle_kb, '.1f'):>9}"
        f"  {' | '.join(n for n in notes if n)}"
    )


def format_details(row: Row, seconds: float | None = None) -> str:
    took = f", cell took {seconds:.0f} s" if seconds is not None else ""
    return (
        f"{'':26}events {row.events_ok}/{row.events_scheduled}, received {row.received:,}/{row.expected:,}, "
        f"max {fmt(row.max_ms, '.0f')} ms, drain {fmt(row.drain_s, '.1f')} s, producer p99 "
        f"{fmt(row.producer_p99_ms, '.1f')} ms, others {fmt(row.other_cpu, '.2f')} cores "
        f"({fmt(row.other_server_core * 100, '.0f')} % of the server's core){took}"
    )


def target_note(row: Row) -> str:
    checks = [("delivered ≥ 99.9 %", row.delivered >= DELIVERED_TARGET)]
    p99_target = P99_TARGETS_MS.get((row.clients, int(row.rate)))
    if p99_target is not None:
        checks.append((f"p99 ≤ {p99_target:.0f} ms", row.p99_ms <= p99_target))
    checks.append((f"≤ {IDLE_KB_TARGET:.0f} KB/idle", row.idle_kb <= IDLE_KB_TARGET))
    return "targets: " + ", ".join(f"{label} {'ok' if ok else 'MISSED'}" for label, ok in checks)


def print_ratios(rows: list[Row]) -> None:
    print("\nordercast / nchan, same cell (p99 latency, server CPU per delivery, RSS per idle connection):")
    by_cell: dict[tuple[int, float], dict[str, Row]] = collections.defaultdict(dict)
    for row in rows:
        by_cell[(row.clients, row.rate)][row.server] = row
    for (clients, rate), servers in by_cell.items():
        nchan = servers.get("nchan")
        if nchan is None:
            continue
        for name, row in servers.items():
            if name == "nchan":
                continue
            print(
                f"  {clients}×{rate:g}/s {name:<16} p99 ×{ratio(row.p99_ms, nchan.p99_ms)}"
                f"  CPU/delivery ×{ratio(row.us_per_delivery, nchan.us_per_delivery)}"
                f"  KB/idle ×{ratio(row.idle_kb, nchan.idle_kb)}  delivered {fmt(row.delivered * 100, '.2f')} %"
                f" vs {fmt(nchan.delivered * 100, '.2f')} %"
            )


def ratio(a: float, b: float) -> str:
    return "—" if not (b > 0) or a != a else f"{a / b:.1f}"


def print_profiles(rows: list[Row]) -> None:
    for row in rows:
        if not row.profile:
            continue
        print(f"\npy-spy, {row.server} {row.clients}×{row.rate:g}/s: top functions by own time (own %, total %)")
        for name, own, total in row.profile:
            print(f"  {own:5.1f} {total:5.1f}  {name}")


# ───────────────────────────── main ─────────────────────────────


def parse_cells(text: str) -> tuple[tuple[int, float], ...]:
    cells = []
    for part in text.split(","):
        clients, _, rate = part.strip().partition("x")
        if not clients.isdigit() or not rate:
            raise argparse.ArgumentTypeError(f"a cell is CLIENTSxRATE, like 1000x10: {part!r}")
        cells.append((int(clients), float(rate)))
    return tuple(cells)


def parse_servers(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in SERVERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown server(s) {unknown}; choose from {', '.join(SERVERS)}")
    return names


def parse_args(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser(
        description="SSE fan-out: ordercast vs. sse-starlette (shared subscription), one Redis subscription per "
        "connection, and nginx+nchan, on the same cells.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument(
        "--servers",
        type=parse_servers,
        default=DEFAULT_SERVERS,
        help=f"comma-separated, from {', '.join(SERVERS)} (default: all)",
    )
    parser.add_argument(
        "--cells",
        type=parse_cells,
        default=parse_cells(DEFAULT_CELLS),
        help=f"CLIENTSxRATE,… (default {DEFAULT_CELLS})",
    )
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of events per cell (default 12)")
    parser.add_argument(
        "--calibrate",
        type=float,
        default=3.0,
        help="seconds of events with no clients, for the server's producing cost (default 3)",
    )
    parser.add_argument(
        "--settle", type=float, default=2.0, help="seconds after connecting before RSS is read (default 2)"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=10.0,
        help="at most this many seconds after the last event for deliveries to arrive (default 10)",
    )
    parser.add_argument("--cpu-server", type=int, default=0, help="CPU for the server and its Redis (default 0)")
    parser.add_argument(
        "--cpu-client", type=int, default=1, help="CPU for the load generator, producer and this script (default 1)"
    )
    parser.add_argument(
        "--payload-bytes",
        type=int,
        default=PAYLOAD_BYTES,
        help=f"peer payload size (default {PAYLOAD_BYTES}, ordercast's envelope)",
    )
    parser.add_argument(
        "--connection-queue",
        type=int,
        default=100_000,
        help="ORDERCAST_CONNECTION_QUEUE (default 100000: no client is cut)",
    )
    parser.add_argument(
        "--profile", type=Path, dest="profile_dir", help="py-spy the Python servers during each window into DIR"
    )
    parser.add_argument("--json", type=Path, dest="json_path", help="also write the rows as JSON to this file")
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=10.0,
        help=f"before each cell, wait up to this many seconds for others' load < {NOISY} cores (default 10)",
    )
    parser.add_argument(
        "--ordercast-src",
        type=Path,
        default=ROOT,
        help="serve ordercast from this checkout (to measure a change side by side; default: this repository)",
    )
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of every process the bench starts, e.g. -10 on a shared machine so that other "
        "work on the two cores disturbs the figures less (default 0)",
    )
    args = parser.parse_args(argv)
    if not (args.ordercast_src / "ordercast" / "__main__.py").exists():
        parser.error(f"--ordercast-src: no ordercast package in {args.ordercast_src}")
    if args.duration <= 0 or args.calibrate <= 0 or args.drain < 0 or args.settle < 0:
        parser.error("--duration and --calibrate must be > 0, --drain and --settle ≥ 0")
    if args.cpu_server == args.cpu_client:
        parser.error("--cpu-server and --cpu-client must differ")
    return Options(
        servers=args.servers,
        cells=args.cells,
        duration=args.duration,
        calibrate=args.calibrate,
        settle=args.settle,
        drain=args.drain,
        cpu_server=args.cpu_server,
        cpu_client=args.cpu_client,
        payload_bytes=args.payload_bytes,
        connection_queue=args.connection_queue,
        profile_dir=args.profile_dir,
        json_path=args.json_path,
        wait_idle=args.wait_idle,
        ordercast_src=args.ordercast_src.resolve(),
        nice=args.nice,
    )


def check_tools(options: Options) -> None:
    missing = []
    if shutil.which("taskset") is None:
        missing.append("taskset (util-linux)")
    if "nchan" in options.servers and (shutil.which("nginx") is None or not Path(NCHAN_MODULE).exists()):
        missing.append("nginx + nchan (apt-get install nginx libnginx-mod-nchan)")
    if any(s in options.servers for s in ("ordercast-redis", "sse-shared", "sse-per-conn")) and not shutil.which(
        "redis-server"
    ):
        missing.append("redis-server (apt-get install redis-server)")
    if missing:
        raise BenchFailure("missing: " + ", ".join(missing))


@contextlib.asynccontextmanager
async def bench_context(options: Options) -> AsyncIterator[Bench]:
    children = Children()
    with tempfile.TemporaryDirectory(prefix="fanout-") as workdir:
        try:
            yield Bench(options, children, Path(workdir))
        finally:
            await children.stop_all()


async def orchestrate(options: Options) -> int:
    global CHILD_NICE
    check_tools(options)
    raise_nofile()
    CHILD_NICE = options.nice
    os.sched_setaffinity(0, {options.cpu_client})
    print(
        f"SSE fan-out: {', '.join(options.servers)}; cells {', '.join(f'{n}×{r:g}/s' for n, r in options.cells)}; "
        f"{options.duration:g} s of events per cell."
    )
    print(
        f"Pinned with taskset: server (and its Redis) on CPU {options.cpu_server}; load generator, producer and "
        f"this script on CPU {options.cpu_client}. One process per server (nchan: one worker)."
        + (f" Every bench process at nice {options.nice}." if options.nice else "")
    )
    print(
        f"Latency: receipt − occurred_at (ordercast), receipt − publish (peers). Payload {options.payload_bytes} B. "
        f"Client-bound: load generator ≥ {CLIENT_BOUND:.0%} of its core.\n"
    )
    rows: list[Row] = []
    started = time.monotonic()
    async with bench_context(options) as bench:
        print(HEADER)
        for clients, rate in options.cells:
            for server in options.servers:
                cell_started = time.monotonic()
                quiet = await wait_quiet(options.wait_idle)
                if quiet >= NOISY:
                    print(f"  (the machine is busy before this cell: {quiet:.2f} cores)", file=sys.stderr)
                try:
                    row = await bench.run_cell(server, clients, rate)
                except (BenchFailure, OSError, TimeoutError, HttpError) as exc:
                    row = Row(server, clients, rate, failure=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
                    print(f"  {server} {clients}×{rate:g}: {exc}", file=sys.stderr)
                rows.append(row)
                print(format_row(row), flush=True)
                print(format_details(row, time.monotonic() - cell_started), flush=True)
    print(f"\nAll cells ({time.monotonic() - started:.0f} s):\n{HEADER}")
    for row in rows:
        print(format_row(row))
        print(format_details(row))
    print(
        "\nsrv CPU: the server process(es) over the window, 1 core = 100 % (includes the producer's requests; "
        "'prod-only' is its CPU at the same rate with no clients). broker: its Redis (on the server core). "
        "µs/dlv: fan-out cost, (server + broker CPU until the last delivery − prod-only × window) / deliveries. "
        "LG: load generator. KB/idle: RSS growth per idle client."
    )
    print_ratios(rows)
    print_profiles(rows)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps([asdict(row) for row in rows], indent=1))
    return 0 if any(row.received for row in rows) else 1


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] in ("_loadgen", "_produce"):
        raise_nofile()
        install_uvloop()
        runner = run_loadgen if argv[0] == "_loadgen" else run_producer
        asyncio.run(runner(json.loads(argv[1])))
        return 0
    options = parse_args(argv)
    try:
        return asyncio.run(orchestrate(options))
    except KeyboardInterrupt:
        print("\ninterrupted; every child was stopped", file=sys.stderr)
        return 130
    except BenchFailure as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
