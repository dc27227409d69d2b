"""Status changes per second through the HTTP API, on SQLite and on PostgreSQL + Redis.

Starts `ordercast serve` pinned to one CPU and the load generator (bench/loadgen.py) pinned to
another, then runs a closed loop (`--concurrency` clients, as fast as the server answers) and an
open loop (`--rate` changes/s on a fixed schedule, latency from the scheduled send time).
A measurement, not a test: exits 0 whatever the figures, non-zero only when the bench itself fails.

    .venv/bin/python bench/api.py [--stack sqlite|postgres|both] [--duration 10] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import os
import re
import secrets
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyspy
from http11 import get_status
from loadgen import cpus_busy

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
POSTGRES_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
READY_DEADLINE = 60.0
MIGRATE_DEADLINE = 120.0
STOP_DEADLINE = 15.0  # the server promises to exit within 10 s of SIGTERM
MAX_REDIS_KEYS = 1_000_000
SERVER_ARGS = ("-m", "ordercast", "serve")
IDLE_LOAD = 0.25  # cores busy before a stack starts, above which its figures are flagged as noisy
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|^Traceback|\"level\": \"(error|critical)\"")

Stack = Literal["sqlite", "postgres"]
# The targets, shown next to the figures: (stack, phase) → (label, met?).
TARGETS: dict[tuple[str, str], tuple[str, Callable[[dict[str, Any]], bool]]] = {
    ("postgres", "closed"): ("≥ 400/s", lambda r: r["rate"] >= 400),
    ("postgres", "open"): ("p99 ≤ 25 ms", lambda r: r["p99_ms"] <= 25 and r["errors"] == 0),
    ("sqlite", "closed"): ("≥ 200/s", lambda r: r["rate"] >= 200),
}
PROFILE_AREAS = {
    "uvicorn (HTTP parsing, transport)": "uvicorn/protocols",
    "starlette (routing, middleware)": "starlette/",
    "pydantic (validation)": "pydantic",
    "tortoise (ORM, query building)": "tortoise/",
    "asyncpg (PostgreSQL driver)": "asyncpg/",
    "SQLite (aiosqlite, tortoise backend)": "sqlite",
    "redis client": "redis/",
}


class BenchFailure(Exception):
    """The bench could not measure (the server didn't start, the load generator failed, …)."""


@dataclass(frozen=True)
class Options:
    stacks: tuple[Stack, ...]
    duration: float
    concurrency: int
    rate: float
    cpu_server: int
    cpu_client: int
    warmup: float
    customers: int
    max_orders: int
    profile_dir: Path | None
    wait_idle: float


@dataclass(frozen=True)
class Server:
    stack: Stack
    process: asyncio.subprocess.Process
    port: int
    api_key: str
    log_path: Path
    # Customers already created (and set up, e.g. linked to Telegram chats) for the load generator;
    # empty: it creates its own.
    customer_ids: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    def check_alive(self) -> None:
        if self.process.returncode is not None:
            raise BenchFailure(
                f"the server exited with {self.process.returncode} during the run:\n{log_tail(self.log_path)}"
            )


def python() -> str:
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


_prctl = ctypes.CDLL(None, use_errno=True).prctl
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM if the bench dies without cleaning up (kill -9)."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def spawn(cpu: int, *args: str, env: dict[str, str], **kwargs: Any) -> asyncio.subprocess.Process:
    # A session of its own: Ctrl-C reaches only the bench, which then stops children in order.
    return await asyncio.create_subprocess_exec(
        "taskset",
        "-c",
        str(cpu),
        *args,
        env=env,
        cwd=ROOT,
        start_new_session=True,
        preexec_fn=die_with_parent,
        **kwargs,
    )


async def stop(process: asyncio.subprocess.Process, deadline: float = STOP_DEADLINE, *, grace: float = 0) -> None:
    """End a child: let it finish for `grace` s, then SIGTERM, then SIGKILL after `deadline` s."""
    if grace > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), deadline)
    except TimeoutError:
        print(f"  process {process.pid} ignored SIGTERM for {deadline:.0f} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def server_env(database_url: str, port: int, api_key: str, redis_prefix: str | None) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ORDERCAST_")}
    env.update(
        ORDERCAST_DATABASE_URL=database_url,
        ORDERCAST_PORT=str(port),
        ORDERCAST_API_KEYS=api_key,
        ORDERCAST_TELEGRAM_MODE="off",
        ORDERCAST_LOG_LEVEL="warning",
    )
    if redis_prefix is not None:
        env.update(ORDERCAST_REDIS_URL=REDIS_URL, ORDERCAST_REDIS_PREFIX=redis_prefix)
    return env


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh, empty database for one run, dropped at the end (also after a failure or Ctrl-C)."""
    import asyncpg  # type: ignore[import-untyped]

    name = f"ordercast_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    print(f"  created database {name}", file=sys.stderr)
    try:
        yield f"postgres://postgres@127.0.0.1:5432/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', timeout=30)
        finally:
            await admin.close()
        print(f"  dropped database {name}", file=sys.stderr)


async def delete_redis_keys(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        deleted = 0
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += await client.unlink(*batch)
                batch.clear()
            if deleted + len(batch) >= MAX_REDIS_KEYS:
                break
        if batch:
            deleted += await client.unlink(*batch)
        print(f"  deleted {deleted} Redis keys under {prefix}", file=sys.stderr)
    finally:
        await client.aclose()


async def wait_ready(process: asyncio.subprocess.Process, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_DEADLINE
    last = "no answer"
    while time.monotonic() < deadline:
        if process.returncode is not None:
            raise BenchFailure(f"the server exited with {process.returncode}:\n{log_tail(log_path)}")
        try:
            async with asyncio.timeout(2):
                status = await get_status(HOST, port, "/readyz")
        except (OSError, TimeoutError) as exc:
            last = repr(exc)
        else:
            if status == 200:
                return
            last = f"HTTP {status}"
        await asyncio.sleep(0.25)
    raise BenchFailure(f"GET /readyz not 200 within {READY_DEADLINE:.0f} s ({last}):\n{log_tail(log_path)}")


@contextlib.asynccontextmanager
async def running_server(stack: Stack, options: Options, workdir: Path) -> AsyncIterator[Server]:
    """`ordercast serve` on a fresh database, pinned to `--cpu-server`, until the block ends."""
    async with contextlib.AsyncExitStack() as cleanup:
        port = free_port()
        api_key = f"ock_{secrets.token_urlsafe(32)}"
        log_path = workdir / f"server-{stack}.log"
        if stack == "sqlite":
            env = server_env(f"sqlite://{workdir}/bench.db", port, api_key, redis_prefix=None)
        else:
            database_url = await cleanup.enter_async_context(postgres_database())
            prefix = f"bench:{secrets.token_hex(4)}"
            cleanup.push_async_callback(delete_redis_keys, prefix)
            env = server_env(database_url, port, api_key, redis_prefix=prefix)
            await migrate(env, log_path)
        log_file = cleanup.enter_context(log_path.open("ab"))
        process = await spawn(
            options.cpu_server,
            python(),
            *SERVER_ARGS,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
        )
        cleanup.push_async_callback(stop, process)
        started = time.monotonic()
        await wait_ready(process, port, log_path)
        print(f"  server pid {process.pid} ready on :{port} in {time.monotonic() - started:.1f} s", file=sys.stderr)
        server = Server(stack=stack, process=process, port=port, api_key=api_key, log_path=log_path)
        yield server
        server.check_alive()


async def migrate(env: dict[str, str], log_path: Path) -> None:
    with log_path.open("ab") as log_file:
        process = await asyncio.create_subprocess_exec(
            python(), "-m", "ordercast", "migrate", env=env, cwd=ROOT, stdout=log_file, stderr=log_file
        )
        try:
            code = await asyncio.wait_for(process.wait(), MIGRATE_DEADLINE)
        finally:
            await stop(process, deadline=5)
    if code != 0:
        raise BenchFailure(f"ordercast migrate exited with {code}:\n{log_tail(log_path)}")


async def run_loadgen(server: Server, options: Options) -> dict[str, Any]:
    """Run bench/loadgen.py against `server`; its result, after profiling the phases if asked."""
    spec = {
        "port": server.port,
        "server_pid": server.pid,
        "server_cpu": options.cpu_server,
        "duration": options.duration,
        "concurrency": options.concurrency,
        "rate": options.rate,
        "customers": options.customers,
        "customer_ids": server.customer_ids,
        "max_orders": options.max_orders,
        "warmup": options.warmup,
    }
    env = {**os.environ, "BENCH_API_KEY": server.api_key}
    process = await spawn(
        options.cpu_client,
        python(),
        str(HERE / "loadgen.py"),
        json.dumps(spec),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        limit=1 << 20,
    )
    profilers: list[asyncio.subprocess.Process] = []
    result: dict[str, Any] | None = None
    # Setup is a few seconds per phase; this bound only catches a hung load generator.
    deadline = time.monotonic() + 600 + 4 * (options.duration + options.warmup)
    try:
        assert process.stdout is not None
        while (remaining := deadline - time.monotonic()) > 0:
            line = await asyncio.wait_for(process.stdout.readline(), remaining)
            if not line:
                break
            event = json.loads(line)
            if event["event"] == "phase_start" and event["phase"] != "warmup" and options.profile_dir:
                profilers.append(await start_profiler(server, event["phase"], event["duration"], options))
            elif event["event"] == "result":
                result = event
        code = await asyncio.wait_for(process.wait(), max(1.0, deadline - time.monotonic()))
    except TimeoutError:
        raise BenchFailure("the load generator ran past its deadline") from None
    finally:
        await stop(process, deadline=5)
        for profiler in profilers:
            # py-spy writes its profile when its --duration ends; SIGTERM only if it overstays.
            await stop(profiler, deadline=5, grace=options.duration + 10)
    if code != 0 or result is None:
        server.check_alive()  # the likelier story when the load generator fails
        raise BenchFailure(f"the load generator exited with {code} and no result")
    return result


async def start_profiler(server: Server, phase: str, duration: float, options: Options) -> asyncio.subprocess.Process:
    assert options.profile_dir is not None
    executable = pyspy.executable()
    if executable is None:
        raise BenchFailure("--profile needs py-spy: .venv/bin/pip install py-spy")
    output = options.profile_dir / f"{server.stack}-{phase}.txt"
    command = pyspy.record_command(executable, server.pid, duration, output)
    # On the load generator's CPU: sampling the server from its own CPU would slow it down more.
    return await spawn(
        options.cpu_client,
        *command,
        env=dict(os.environ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


def limit_of(row: dict[str, Any]) -> str:
    """A first reading of what bounded the figure, from where the CPU went."""
    if row["loadgen_cpu"] >= 0.8:
        return "load generator (figure invalid)"
    if row["server_cpu"] >= 0.85:
        return "server CPU"
    if row["phase"] == "open" and row["rate"] >= 0.97 * row["target_rate"]:
        return "offered rate (not saturated)"
    if row["server_core_busy"] >= 0.9:
        return "server's core, shared with other processes"
    if row["server_cpu"] + row["loadgen_cpu"] + row["other_cpu"] >= 1.8:
        return "machine CPU"
    return "waiting (locks, I/O, DB)"


def cpu_per_change(row: dict[str, Any]) -> float:
    """Server CPU milliseconds per answered change: steadier than changes/s on a shared machine."""
    return 1000 * row["server_cpu"] / row["rate"] if row["rate"] else 0.0


def print_table(results: list[tuple[Stack, dict[str, Any]]], options: Options) -> None:
    header = (
        f"{'stack':<9} {'phase':<14} {'changes/s':>9} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'errors':>6} "
        f"{'server CPU':>10} {'(sys)':>5} {'ms/change':>9} {'its core':>8} {'loadgen CPU':>11} {'other CPU':>9}  "
        f"{'target':<20} limit"
    )
    print()
    print(header)
    print("-" * len(header))
    for stack, result in results:
        for row in result["phases"]:
            label = f"closed c={options.concurrency}" if row["phase"] == "closed" else f"open {options.rate:g}/s"
            target = TARGETS.get((stack, row["phase"]))
            target_text = f"{target[0]} {'met' if target[1](row) else 'MISSED'}" if target else "-"
            print(
                f"{stack:<9} {label:<14} {row['rate']:>9.0f} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} "
                f"{row['max_ms']:>7.1f} {row['errors']:>6} {row['server_cpu']:>10.0%} {row['server_sys_cpu']:>5.0%} "
                f"{cpu_per_change(row):>9.2f} "
                f"{row['server_core_busy']:>8.0%} {row['loadgen_cpu']:>11.0%} "
                f"{row['other_cpu']:>9.0%}  {target_text:<20} {limit_of(row)}"
            )
    print(
        "CPU: share of one core over the phase (100% = a core fully busy); (sys): the server's kernel time; "
        "ms/change: server CPU\nper answered change; its core: how busy the server's core was, by anything; "
        "other: every process but the server and\nthe load generator (PostgreSQL, Redis, anything else running)."
    )
    for stack, result in results:
        for row in result["phases"]:
            if row["errors"]:
                print(f"{stack} {row['phase']}: errors by kind {row['error_kinds']}")
                for sample in row["error_samples"]:
                    print(f"    {sample}")
            if row.get("pool_exhausted_at") is not None:
                print(f"{stack} {row['phase']}: the order pool ran out at {row['pool_exhausted_at']:.1f} s")


def print_profiles(stack: Stack, options: Options) -> None:
    assert options.profile_dir is not None
    for phase in ("closed", "open"):
        path = options.profile_dir / f"{stack}-{phase}.txt"
        if not path.exists():
            print(f"\n{stack} {phase}: no profile written ({path})")
            continue
        total, rows = pyspy.top_functions(path)
        print(f"\n{stack} {phase}: py-spy, {total} samples of the server ({path})")
        for area, share in pyspy.hot_paths(path, PROFILE_AREAS).items():
            print(f"  {share:5.1f}%  in {area}")
        print("  self %  total %  function")
        for name, own, inclusive in rows:
            print(f"  {own:6.1f}  {inclusive:7.1f}  {name}")


async def background_load(seconds: float = 1.0) -> float:
    """How many cores' worth of CPU the machine is busy with before the bench adds anything."""
    before, started = cpus_busy()["cpu"], time.monotonic()
    await asyncio.sleep(seconds)
    return (cpus_busy()["cpu"] - before) / (time.monotonic() - started)


def server_errors(log_path: Path) -> list[str]:
    text = log_path.read_text(errors="replace") if log_path.exists() else ""
    return [line for line in text.splitlines() if ERROR_LINE.search(line)]


async def bench(options: Options) -> int:
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    assert main_task is not None
    loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    print(
        f"pinning (taskset -c): server → CPU {options.cpu_server}, load generator → CPU {options.cpu_client}; "
        "PostgreSQL and Redis unpinned",
        file=sys.stderr,
    )
    results: list[tuple[Stack, dict[str, Any]]] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="ordercast-bench-") as tmp:
        for stack in options.stacks:
            print(f"{stack}: starting", file=sys.stderr)
            load = await background_load()
            waited_until = time.monotonic() + options.wait_idle
            while load > IDLE_LOAD and time.monotonic() < waited_until:
                load = await background_load(5.0)
            if load > IDLE_LOAD:
                print(
                    f"{stack}: warning: the machine is already busy ({load:.0%} of a core before the bench "
                    "starts); the figures will be noisy",
                    file=sys.stderr,
                )
            try:
                async with running_server(stack, options, Path(tmp)) as server:
                    result = await run_loadgen(server, options)
                    errors = server_errors(server.log_path)
            except (BenchFailure, OSError) as exc:
                print(f"{stack}: bench failed: {exc}", file=sys.stderr)
                failed = True
                continue
            results.append((stack, result))
            if errors:
                print(f"{stack}: the server logged {len(errors)} error lines, e.g.:", file=sys.stderr)
                for line in errors[:5]:
                    print(f"    {line}", file=sys.stderr)
            if options.profile_dir:
                print_profiles(stack, options)
    if results:
        print_table(results, options)
    return 1 if failed else 0


def parse_args(argv: list[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stack", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase (default 10)")
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients (default 16)")
    parser.add_argument("--rate", type=float, default=200.0, help="open-loop changes/s (default 200)")
    parser.add_argument("--cpu-server", type=int, default=0, help="CPU for the server (default 0)")
    parser.add_argument("--cpu-client", type=int, default=1, help="CPU for the load generator (default 1)")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured closed loop first (default 2 s)")
    parser.add_argument("--customers", type=int, default=20, help="customers the orders spread over")
    parser.add_argument("--max-orders", type=int, default=50_000, help="cap on orders created per phase")
    parser.add_argument("--profile", type=Path, metavar="DIR", help="py-spy the server in each phase, into DIR")
    parser.add_argument(
        "--wait-idle", type=float, default=0, metavar="S", help="wait up to S seconds for an idle machine"
    )
    args = parser.parse_args(argv)
    if not (0 < args.duration <= 3600 and 0 <= args.warmup <= 600):
        parser.error("--duration must be in (0, 3600] and --warmup in [0, 600]")
    if not (1 <= args.concurrency <= 256 and 0 < args.rate <= 20_000 and 1 <= args.customers <= 10_000):
        parser.error("--concurrency must be in 1..256, --rate in (0, 20000], --customers in 1..10000")
    cpus = os.sched_getaffinity(0)
    for flag, cpu in (("--cpu-server", args.cpu_server), ("--cpu-client", args.cpu_client)):
        if cpu not in cpus:
            parser.error(f"{flag} {cpu}: this process may use CPUs {sorted(cpus)}")
    if args.cpu_server == args.cpu_client:
        print("warning: server and load generator share a CPU; the figures include the generator's cost")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    stacks: tuple[Stack, ...] = ("sqlite", "postgres") if args.stack == "both" else (args.stack,)
    return Options(
        stacks=stacks,
        duration=args.duration,
        concurrency=args.concurrency,
        rate=args.rate,
        cpu_server=args.cpu_server,
        cpu_client=args.cpu_client,
        warmup=args.warmup,
        customers=args.customers,
        max_orders=args.max_orders,
        profile_dir=args.profile.resolve() if args.profile else None,
        wait_idle=max(0.0, args.wait_idle),
    )


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    try:
        return asyncio.run(bench(options))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; the server and the bench database are gone", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
