"""Shared fixtures: real servers (uvicorn subprocesses) on both supported stacks.

`sqlite`: SQLite + the in-process broker. `postgres`: the PostgreSQL and Redis of this machine,
with a fresh database and Redis key prefix per run. Both must be reachable: tests never skip.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
import httpx
import pytest
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = os.environ.get("ORDERCAST_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("ORDERCAST_TEST_REDIS", "redis://127.0.0.1:6379/0")
API_KEY = "ock_test_" + secrets.token_urlsafe(16)
ADMIN_EMAIL = "admin@example.com"
# Two payment webhook secrets, as during a rotation; and Stripe's endpoint secret.
PAYMENT_SECRET = "whsec_" + base64.b64encode(b"ordercast-test-payment-secret-01").decode()
OLD_PAYMENT_SECRET = "whsec_" + base64.b64encode(b"ordercast-test-payment-secret-00").decode()
STRIPE_SECRET = "whsec_stripe_test_secret"
ADMIN_PASSWORD = "correct horse battery staple"
STACKS = ["sqlite", "postgres"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(condition: Callable[[], Any], timeout: float = 10, message: str = "condition") -> Any:
    """Poll `condition` (sync or async) until it returns something truthy, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def serving(app: Any, what: str) -> AsyncIterator[str]:
    """Serve an ASGI `app` (a fake of an internet service) on a free port in this event loop; its URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await wait_for(lambda: server.started or task.done(), message=f"{what} to start")
        assert server.started, f"{what} did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


class Fake(Protocol):
    """A fake of an internet service: an ASGI app, served at `url`, closed at the end."""

    app: Any
    url: str

    async def close(self) -> None: ...


FakeT = TypeVar("FakeT", bound=Fake)


@contextlib.asynccontextmanager
async def running_fake(fake: FakeT, what: str) -> AsyncIterator[FakeT]:
    """Serve `fake` on a free port in this event loop, with its `url` set, and close it at the end."""
    async with serving(fake.app, what) as url:
        fake.url = url
        try:
            yield fake
        finally:
            await fake.close()


@dataclass
class Stack:
    """Where a server's state lives: the database URL and the broker URL."""

    name: str
    database_url: str
    redis_url: str | None
    env: dict[str, str] = field(default_factory=dict)


async def create_postgres_database() -> tuple[str, Callable[[], Any]]:
    name = f"ordercast_test_{os.getpid()}_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(POSTGRES.replace("postgres://", "postgresql://", 1))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    base = POSTGRES.rsplit("/", 1)[0]

    async def drop() -> None:
        conn = await asyncpg.connect(POSTGRES.replace("postgres://", "postgresql://", 1))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    return f"{base}/{name}", drop


@pytest.fixture(scope="session", params=STACKS)
async def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("sqlite") / "ordercast.db"
        yield Stack("sqlite", f"sqlite://{path}", None)
        return
    url, drop = await create_postgres_database()
    prefix = f"octest:{secrets.token_hex(4)}"
    yield Stack("postgres", url, REDIS, env={"ORDERCAST_REDIS_PREFIX": prefix})
    await drop()


class ServerProcess:
    """`python -m ordercast serve` in a subprocess: a real uvicorn on a free port."""

    def __init__(self, stack: Stack, log_path: Path, **settings: Any) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.stack = stack
        self.log_path = log_path
        self.env = {
            **os.environ,
            "ORDERCAST_DATABASE_URL": stack.database_url,
            "ORDERCAST_PORT": str(self.port),
            "ORDERCAST_HOST": "127.0.0.1",
            "ORDERCAST_API_KEYS": API_KEY,
            "ORDERCAST_ADMIN_EMAIL": ADMIN_EMAIL,
            "ORDERCAST_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "ORDERCAST_TELEGRAM_MODE": "off",
            "ORDERCAST_SECRET_KEY": "test-secret-key-not-for-production",
            "ORDERCAST_PAYMENT_WEBHOOK_SECRET": f"{OLD_PAYMENT_SECRET} {PAYMENT_SECRET}",
            "ORDERCAST_STRIPE_WEBHOOK_SECRET": STRIPE_SECRET,
            "ORDERCAST_PING_INTERVAL": "1",
            "ORDERCAST_SWEEP_INTERVAL": "0.2",
            "ORDERCAST_SWEEP_GRACE": "0.5",
            "ORDERCAST_LOG_LEVEL": "info",
            # Every server sends pushes (any of them may claim a test's): all on the fake push
            # service's plain http, all retrying as fast, whichever sends.
            "ORDERCAST_PUSH_ALLOW_INSECURE": "true",
            "ORDERCAST_DELIVERY_CLAIM_INTERVAL": "0.2",
            "ORDERCAST_DELIVERY_RETRY_BASE": "0.2",
            "ORDERCAST_DELIVERY_RETRY_CAP": "1",
            "ORDERCAST_PUSH_SEND_TIMEOUT": "2",
            **stack.env,
            **{f"ORDERCAST_{k.upper()}": str(v) for k, v in settings.items()},
        }
        if stack.redis_url:
            self.env["ORDERCAST_REDIS_URL"] = stack.redis_url
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ordercast", "serve"],
            env=self.env,
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    async def wait_ready(self, timeout: float = 30) -> None:
        assert self.process is not None
        await wait_until_ready(self.process, self.base_url, self.output, timeout)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self.log.close()


async def wait_until_ready(
    process: subprocess.Popen[bytes], base_url: str, output: Callable[[], str], timeout: float = 30
) -> None:
    """Wait for the server `process` to answer 200 on `/readyz`; fail with its output if it exits."""

    async def ready() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{output()}")
        try:
            async with httpx.AsyncClient(timeout=1) as client:
                return (await client.get(f"{base_url}/readyz")).status_code == 200
        except httpx.HTTPError:
            return False

    await wait_for(ready, timeout, f"the server on {base_url} to be ready")


def migrate(stack: Stack) -> None:
    env = {**os.environ, "ORDERCAST_DATABASE_URL": stack.database_url}
    subprocess.run([sys.executable, "-m", "ordercast", "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)


# Every server a test started, and the session's shared ones: a server a test module started is
# stopped when the module ends, or the background loops of dozens of idle servers (sweepers and
# senders polling five times a second) would take the CPU the later tests need.
_LIVE: list[ServerProcess] = []
_SHARED: set[int] = set()


@pytest.fixture(scope="module", autouse=True)
def stop_the_servers_the_module_started() -> Iterator[None]:
    before = len(_LIVE)
    yield
    for server in _LIVE[before:]:
        if id(server) not in _SHARED:
            server.stop(signal.SIGKILL)


@contextlib.contextmanager
def server_starter(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    migrate(stack)
    started: list[ServerProcess] = []

    async def start(**settings: Any) -> ServerProcess:
        folder = tmp_path_factory.mktemp("server")
        own = stack
        if stack.name == "sqlite" and started:
            # SQLite is one process's database: a second server on the stack gets a file of its own.
            own = Stack("sqlite", f"sqlite://{folder / 'ordercast.db'}", None, stack.env)
        server = ServerProcess(own, folder / "server.log", **settings)
        server.start()
        started.append(server)
        _LIVE.append(server)
        await server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop(signal.SIGKILL)


@pytest.fixture(scope="session")
def start_server(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Start extra servers on the session's stack (with their own settings); killed at the end."""
    with server_starter(stack, tmp_path_factory) as start:
        yield start


@pytest.fixture(scope="session")
async def postgres_stack() -> AsyncIterator[Stack]:
    """PostgreSQL + Redis whatever the parametrised stack: for tests of several processes."""
    url, drop = await create_postgres_database()
    yield Stack("postgres", url, REDIS, env={"ORDERCAST_REDIS_PREFIX": f"octest:{secrets.token_hex(4)}"})
    await drop()


@pytest.fixture(scope="session")
def start_pg_server(postgres_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """Start servers sharing one PostgreSQL database and one Redis."""
    with server_starter(postgres_stack, tmp_path_factory) as start:
        yield start


@pytest.fixture(scope="session")
async def server(start_server: Callable[..., Any]) -> ServerProcess:
    """The session's shared server on the current stack."""
    shared: ServerProcess = await start_server()
    _SHARED.add(id(shared))
    return shared


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
async def anonymous(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        yield client


async def new_customer(client: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"external_id": f"ext-{secrets.token_hex(6)}", "name": "Test Customer", **fields}
    response = await client.post("/api/v1/customers", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


async def new_order(client: httpx.AsyncClient, customer_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "customer_id": customer_id,
        "currency": "EUR",
        "items": [{"sku": "TEA", "name": "Tea", "quantity": 2, "unit_price": "4.95"}],
        **fields,
    }
    response = await client.post("/api/v1/orders", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]
