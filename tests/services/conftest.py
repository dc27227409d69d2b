"""Use cases called in the test process, on a fresh SQLite file and a fresh PostgreSQL database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tortoise import Tortoise
from tortoise.backends.base.executor import EXECUTOR_CACHE

from ordercast.models.db import tortoise_config, upgrade
from tests.conftest import create_postgres_database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """Tortoise initialised on a migrated database of each kind; yields the kind."""
    drop = None
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path_factory.mktemp('services') / 'services.db'}"
    else:
        url, drop = await create_postgres_database()
    await upgrade(url)
    await Tortoise.init(config=tortoise_config(url, pool_size=5))
    try:
        yield str(request.param)
    finally:
        await Tortoise.close_connections()
        # Tortoise caches each model's INSERT by connection name ("default" for both), in its dialect.
        EXECUTOR_CACHE.clear()
        if drop is not None:
            await drop()
