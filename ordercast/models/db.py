"""Database wiring: the Tortoise config for a URL, and bringing a database up to date."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tortoise import Tortoise, connections
from tortoise.migrations.api import migrate
from tortoise.migrations.executor import MigrationExecutor

MODELS_MODULE = "ordercast.models"
MIGRATIONS_MODULE = "ordercast.models.migrations"


def tortoise_config(database_url: str, *, pool_size: int = 10) -> dict[str, Any]:
    """The Tortoise config for `database_url`; PostgreSQL URLs get a pool of `pool_size`."""
    url = database_url
    parts = urlsplit(database_url)
    if parts.scheme in {"postgres", "postgresql", "asyncpg", "psycopg"}:
        query = dict(parse_qsl(parts.query))
        query.setdefault("maxsize", str(pool_size))
        query.setdefault("minsize", "1")
        url = urlunsplit(parts._replace(query=urlencode(query)))
    return {
        "connections": {"default": url},
        "apps": {
            "models": {
                "models": [MODELS_MODULE],
                "default_connection": "default",
                "migrations": MIGRATIONS_MODULE,
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def upgrade(database_url: str) -> None:
    """Apply every migration the database hasn't seen yet."""
    try:
        await migrate(config=tortoise_config(database_url, pool_size=1))
    finally:
        await Tortoise.close_connections()


class SchemaBehind(RuntimeError):
    """The server was started on a database that `ordercast migrate` hasn't brought up to date."""


async def pending_migrations(database_url: str) -> list[str]:
    """The migrations the (connected) database hasn't seen yet, by name; [] when it is up to date."""
    executor = MigrationExecutor(connections.get("default"), tortoise_config(database_url)["apps"])
    return [step.migration.name for step in await executor.plan() if not step.backward]


# For `tortoise -c ordercast.models.db.DEV_CONFIG makemigrations` after changing a model.
DEV_CONFIG = tortoise_config("sqlite://:memory:")
