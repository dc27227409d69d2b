"""Plain SQL for the hot paths inside a change's transaction, where building ORM queries costs more
than running them: placeholders in the connection's dialect, and multi-row inserts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient


class Statement:
    """Collects parameters and writes their placeholders (`$1` on PostgreSQL, `?` on SQLite)."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        self.postgres = conn.capabilities.dialect != "sqlite"
        self.params: list[Any] = []

    def __call__(self, value: Any) -> str:
        self.params.append(value)
        return f"${len(self.params)}" if self.postgres else "?"

    def row(self, values: Iterable[Any]) -> str:
        return "(" + ", ".join(self(value) for value in values) + ")"

    def rows(self, rows: Iterable[Iterable[Any]]) -> str:
        return ", ".join(self.row(values) for values in rows)

    def each(self, values: Iterable[Any]) -> str:
        """`a, b, c` placeholders for `IN (…)`."""
        return ", ".join(self(value) for value in values)

    async def run(self, sql: str) -> list[dict[str, Any]]:
        """Execute `sql` with the collected parameters; the rows it returns (also from `RETURNING`:
        `execute_query` drops those of an INSERT, UPDATE or DELETE on PostgreSQL)."""
        return await self.conn.execute_query_dict(sql, self.params)


async def insert(conn: BaseDBAsyncClient, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """One `INSERT` of every row."""
    if not rows:
        return
    statement = Statement(conn)
    values = statement.rows(rows)
    # Our own table and column names, and placeholders: nothing from outside goes into the text.
    await statement.run(f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}")  # noqa: S608
