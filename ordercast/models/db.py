"""Database wiring: the Tortoise config for a URL, and bringing a database up to date."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.migrations.api import migrate
from tortoise.migrations.executor import MigrationExecutor

MODELS_MODULE = "ordercast.models"
MIGRATIONS_MODULE = "ordercast.models.migrations"


def tortoise_config(
    database_url: str, *, pool_size: int = 10, statement_timeout: float = 10, connect_timeout: float = 5
) -> dict[str, Any]:
    """The Tortoise config for `database_url`. PostgreSQL gets a pool of `pool_size` and timeouts: the
    server cancels a statement after `statement_timeout` seconds (which also bounds how long a request
    waits for a pooled connection), and a connection attempt gives up after `connect_timeout`."""
    connection: str | dict[str, Any] = database_url
    if urlsplit(database_url).scheme in {"postgres", "postgresql", "asyncpg"}:
        connection = expand_db_url(database_url)
        credentials = connection["credentials"]
        credentials.setdefault("maxsize", pool_size)
        credentials.setdefault("minsize", 1)
        credentials["timeout"] = connect_timeout
        # The client's own limit, a little above the server's: a server that stops answering altogether.
        credentials["command_timeout"] = statement_timeout + 1
        credentials["server_settings"] = {
            "statement_timeout": str(int(statement_timeout * 1000)),
            "idle_in_transaction_session_timeout": str(int(statement_timeout * 3000)),
        }
    return {
        "connections": {"default": connection},
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
