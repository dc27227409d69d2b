"""docker-compose.yml's settings start a real server (no Docker engine here: the same variables, with the
compose service hosts replaced by this machine's PostgreSQL and Redis)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

import pytest
import yaml

from tests.conftest import POSTGRES, REDIS, ROOT, create_postgres_database, free_port, wait_until_ready

_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def compose_environment(given: dict[str, str]) -> dict[str, str]:
    """The `ordercast` service's environment as compose would pass it with `given` as the shell's."""
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    environment: dict[str, str] = document["services"]["ordercast"]["environment"]

    def substitute(match: re.Match[str]) -> str:
        name, kind, word = match.groups()
        value = given.get(name)
        if kind == "?" and not value:
            raise AssertionError(f"compose would refuse to start: {word}")
        return value if value else (word or "")

    return {key: _VARIABLE.sub(substitute, str(value)) for key, value in environment.items()}


def migrate_and_serve(env: dict[str, str], log: BinaryIO) -> subprocess.Popen[bytes]:
    migrate = subprocess.run(
        [sys.executable, "-m", "ordercast", "migrate"], env=env, cwd=ROOT, capture_output=True, timeout=60
    )
    assert migrate.returncode == 0, migrate.stderr.decode()
    return subprocess.Popen(
        [sys.executable, "-m", "ordercast", "serve"], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
    )


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url, drop = await create_postgres_database()
    yield url
    await drop()


async def test_the_compose_files_variables_start_a_ready_server(database: str, tmp_path: Path) -> None:
    env = compose_environment({"ORDERCAST_ADMIN_PASSWORD": "a password from .env"})
    assert env["ORDERCAST_TELEGRAM_TOKEN"] == "", "the compose file passes an unset token as an empty value"
    env["ORDERCAST_DATABASE_URL"] = env["ORDERCAST_DATABASE_URL"].replace(
        "postgres://ordercast:ordercast@postgres:5432/ordercast", database
    )
    env["ORDERCAST_REDIS_URL"] = env["ORDERCAST_REDIS_URL"].replace("redis://redis:6379/0", REDIS)
    assert env["ORDERCAST_DATABASE_URL"] == database
    assert env["ORDERCAST_REDIS_URL"] == REDIS
    assert database.startswith(POSTGRES.rsplit("/", 1)[0])
    port = free_port()
    # The image sets the listen address; the host port is a free one here instead of compose's 8000.
    process_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORDERCAST_")},
        **env,
        "ORDERCAST_HOST": "127.0.0.1",
        "ORDERCAST_PORT": str(port),
    }
    log = (tmp_path / "serve.log").open("wb")
    server = migrate_and_serve(process_env, log)
    try:
        await wait_until_ready(server, f"http://127.0.0.1:{port}", (tmp_path / "serve.log").read_text)
    finally:
        server.terminate()
        server.wait(15)
        log.close()
