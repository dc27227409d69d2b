"""Generated secrets are stored sealed under the configured secret key; ones stored in clear before stay readable."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from ordercast.notify.vapid import VapidKey
from tests.conftest import ServerProcess, Stack, create_postgres_database, server_starter

VAPID = "vapid_private_key"


async def stored(database_url: str, name: str) -> str:
    if database_url.startswith("sqlite://"):
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as conn:
            (value,) = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
        return str(value)
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        return str(await conn.fetchval("SELECT value FROM secrets WHERE name = $1", name))
    finally:
        await conn.close()


async def store_in_clear(database_url: str, name: str, value: str) -> None:
    """As a version that didn't seal secrets stored them."""
    query = "INSERT INTO secrets (name, value, created_at) VALUES ({0}, {1}, CURRENT_TIMESTAMP)"
    if database_url.startswith("sqlite://"):
        with sqlite3.connect(database_url.removeprefix("sqlite://")) as conn:
            conn.execute(query.format("?", "?"), (name, value))
        return
    conn = await asyncpg.connect(database_url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(query.format("$1", "$2"), name, value)
    finally:
        await conn.close()


async def served_vapid_key(server: ServerProcess) -> str:
    async with httpx.AsyncClient(base_url=server.base_url) as anyone:
        return str((await anyone.get("/api/v1/push/vapid-public-key")).json()["key"])


@pytest.fixture(params=["sqlite", "postgres"])
async def fresh_stack(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stack]:
    if request.param == "sqlite":
        yield Stack("sqlite", f"sqlite://{tmp_path / 'legacy.db'}", None)
        return
    url, drop = await create_postgres_database()
    yield Stack("postgres", url, None)
    await drop()


async def test_a_generated_secret_is_stored_sealed(server: ServerProcess) -> None:
    public_key = await served_vapid_key(server)
    value = await stored(server.env["ORDERCAST_DATABASE_URL"], VAPID)
    assert value.startswith("fernet:")
    assert public_key not in value
    with pytest.raises(ValueError, match="VAPID"):
        VapidKey.parse(value)


async def test_a_secret_stored_in_clear_before_stays_readable_and_is_sealed(
    fresh_stack: Stack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    legacy = VapidKey.generate()
    with server_starter(fresh_stack, tmp_path_factory) as start:
        await store_in_clear(fresh_stack.database_url, VAPID, legacy.serialize())
        server: ServerProcess = await start()
        assert await served_vapid_key(server) == legacy.public_key
        value = await stored(fresh_stack.database_url, VAPID)
        assert value.startswith("fernet:")
        assert legacy.serialize() not in value
