"""The command line: help everywhere, keys on stdout alone, admins that can log in."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, ServerProcess, create_postgres_database


def ordercast(
    *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ordercast", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [[], ["serve"], ["demo"], ["migrate"], ["admin"], ["admin", "create"], ["apikey"], ["apikey", "create"]],
)
def test_every_command_has_help(command: list[str]) -> None:
    result = ordercast(*command, "--help")
    assert result.returncode == 0
    assert "usage: ordercast" in result.stdout


def test_unknown_command_fails_with_usage() -> None:
    result = ordercast("launch")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr


def test_apikey_create_prints_only_the_key_and_admin_create_sets_a_password(tmp_path: Path) -> None:
    env = {"ORDERCAST_DATABASE_URL": f"sqlite://{tmp_path / 'cli.db'}"}
    created = ordercast("apikey", "create", "--name", "backend", env=env)
    assert created.returncode == 0, created.stderr
    assert re.fullmatch(r"ock_[A-Za-z0-9_-]{43}\n", created.stdout)
    admin = ordercast("admin", "create", "--email", "Boss@Example.com", "--password", "s3cret-pass", env=env)
    assert admin.returncode == 0, admin.stderr
    assert "boss@example.com" in admin.stderr
    for_admin = ordercast("apikey", "create", "--admin", "boss@example.com", env=env)
    assert for_admin.returncode == 0
    assert for_admin.stdout.startswith("ock_")
    missing = ordercast("apikey", "create", "--admin", "nobody@example.com", env=env)
    assert missing.returncode == 1
    assert "nobody@example.com" in missing.stderr
    short = ordercast("admin", "create", "--email", "x@example.com", "--password", "short", env=env)
    assert short.returncode == 1


async def test_serve_on_an_unmigrated_postgres_database_says_to_migrate() -> None:
    url, drop = await create_postgres_database()
    try:
        env = {"ORDERCAST_DATABASE_URL": url, "ORDERCAST_PORT": "0", "ORDERCAST_TELEGRAM_MODE": "off"}
        result = await asyncio.to_thread(ordercast, "serve", env=env)
        assert result.returncode != 0
        assert "run `ordercast migrate` first" in result.stderr + result.stdout
        assert "0001" in result.stderr + result.stdout  # names what is pending
    finally:
        await drop()


def test_the_server_survives_writing_to_a_client_that_hung_up(server: ServerProcess) -> None:
    # Python ignores SIGPIPE, so such a write raises (and only that stream ends). With the signal's
    # default action instead, as a command piped into `head` wants, it would kill the whole server.
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    ignored = int(re.search(r"^SigIgn:\s*([0-9a-f]+)$", status, re.M)[1], 16)  # type: ignore[index]
    assert ignored & (1 << (signal.SIGPIPE - 1)), "SIGPIPE must be ignored by the server"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORDERCAST_SECRET_KEY": "short-secret"}, "ORDERCAST_SECRET_KEY: Value error, must be at least 32 characters"),
        ({"ORDERCAST_PORT": "eighty"}, "ORDERCAST_PORT: Input should be a valid integer"),
    ],
)
def test_a_bad_setting_is_one_line_naming_the_variable_never_its_value(env: dict[str, str], message: str) -> None:
    result = ordercast("migrate", env=env)
    assert result.returncode == 2
    assert result.stderr.startswith(f"ordercast: {message}")
    assert "Traceback" not in result.stderr
    assert "short-secret" not in result.stderr


def test_a_variable_set_but_empty_counts_as_unset(tmp_path: Path) -> None:
    env = {
        "ORDERCAST_DATABASE_URL": f"sqlite://{tmp_path / 'empty.db'}",
        "ORDERCAST_PORT": "",
        "ORDERCAST_SECRET_KEY": "",
    }
    result = ordercast("migrate", env=env)
    assert result.returncode == 0, result.stderr
