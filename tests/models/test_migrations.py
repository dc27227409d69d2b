"""One migration history for SQLite and PostgreSQL, producing exactly the schema the models describe."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from tortoise import Tortoise

from ordercast.models.db import tortoise_config, upgrade
from tests.conftest import create_postgres_database

Schema = dict[str, dict[str, Any]]
# The unique keys correctness depends on (the migration tool is young: check they really exist).
RELIED_ON = {
    "payments": {("payment_id", "kind")},
    "orders": {("number",)},
    "events": {("order_id", "order_version")},
    "idempotency_keys": {("user_id", "key")},
    "customers": {("external_id",)},
    "api_keys": {("key_hash",)},
    "admin_users": {("email",)},
    "reviews": {("order_id",)},
    "deliveries": {("event_id", "channel", "recipient"), ("id",)},
    "notifications": {("event_id", "user_id"), ("id",)},
    "alerts": {("open_key",), ("id",)},
    "notification_preferences": {("user_id", "category")},
    "push_subscriptions": {("endpoint",), ("id",)},
    "push_services": {("origin",)},
    "telegram_chats": {("chat_id",), ("customer_id",)},
    "telegram_links": {("token_hash",)},
}


def sqlite_schema(path: Path) -> Schema:
    conn = sqlite3.connect(path)
    schema: Schema = {}
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        if table.startswith("sqlite_") or table == "tortoise_migrations":
            continue
        columns = {
            row[1]: (row[2].upper(), bool(row[3]) or bool(row[5]))
            for row in conn.execute(f'PRAGMA table_info("{table}")')
        }
        uniques = set()
        indexed = set()
        for _, name, unique, *_ in conn.execute(f'PRAGMA index_list("{table}")'):
            cols = tuple(r[2] for r in conn.execute(f'PRAGMA index_info("{name}")'))
            (uniques if unique else indexed).add(cols)
        schema[table] = {"columns": columns, "unique": uniques, "indexes": indexed}
    conn.close()
    return schema


async def postgres_schema(url: str) -> Schema:
    conn = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    schema: Schema = {}
    rows = await conn.fetch(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'public'"
    )
    for row in rows:
        if row["table_name"] == "tortoise_migrations":
            continue
        table = schema.setdefault(row["table_name"], {"columns": {}, "unique": set(), "indexes": set()})
        table["columns"][row["column_name"]] = (row["data_type"].upper(), row["is_nullable"] == "NO")
    indexes = await conn.fetch(
        """
        SELECT t.relname AS table_name, ix.indisunique AS is_unique,
               array_agg(a.attname ORDER BY array_position(ix.indkey, a.attnum)) AS columns
        FROM pg_index ix
        JOIN pg_class t ON t.oid = ix.indrelid
        JOIN pg_namespace n ON n.oid = t.relnamespace
        JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(ix.indkey)
        WHERE n.nspname = 'public'
        GROUP BY t.relname, ix.indexrelid, ix.indisunique
        """
    )
    for row in indexes:
        if row["table_name"] in schema:
            kind = "unique" if row["is_unique"] else "indexes"
            schema[row["table_name"]][kind].add(tuple(row["columns"]))
    await conn.close()
    return schema


async def from_models(url: str) -> None:
    await Tortoise.init(config=tortoise_config(url, pool_size=1))
    try:
        await Tortoise.generate_schemas(safe=False)
    finally:
        await Tortoise.close_connections()


@pytest.fixture(params=["sqlite", "postgres"])
async def two_databases(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[tuple[str, str, Callable[[str], Any]]]:
    if request.param == "sqlite":
        migrated, modelled = tmp_path / "migrated.db", tmp_path / "modelled.db"

        async def read_sqlite(url: str) -> Schema:
            return sqlite_schema(Path(url.removeprefix("sqlite://")))

        yield f"sqlite://{migrated}", f"sqlite://{modelled}", read_sqlite
        return
    (migrated_url, drop_migrated), (modelled_url, drop_modelled) = (
        await create_postgres_database(),
        await create_postgres_database(),
    )
    yield migrated_url, modelled_url, postgres_schema
    await drop_migrated()
    await drop_modelled()


async def test_migrations_build_the_schema_of_the_models(two_databases: tuple[str, str, Callable[[str], Any]]) -> None:
    migrated_url, modelled_url, read = two_databases
    await upgrade(migrated_url)
    await from_models(modelled_url)
    migrated, modelled = await read(migrated_url), await read(modelled_url)
    assert set(migrated) == set(modelled)
    for table in modelled:
        assert migrated[table]["columns"] == modelled[table]["columns"], table
        assert migrated[table]["unique"] == modelled[table]["unique"], table
    for table, keys in RELIED_ON.items():
        assert keys <= migrated[table]["unique"], f"{table} lacks a unique key on {keys}"


async def test_upgrading_twice_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'twice.db'}"
    await upgrade(url)
    first = sqlite_schema(tmp_path / "twice.db")
    await upgrade(url)
    assert sqlite_schema(tmp_path / "twice.db") == first
