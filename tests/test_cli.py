"""The command line: help everywhere, keys on stdout alone, admins that can log in."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
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
    [
        [],
        ["serve"],
        ["demo"],
        ["migrate"],
        ["admin"],
        ["admin", "create"],
        ["admin", "list"],
        ["admin", "disable"],
        ["admin", "enable"],
        ["apikey"],
        ["apikey", "create"],
        ["apikey", "list"],
        ["apikey", "revoke"],
    ],
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


def test_apikey_list_shows_records_never_keys_and_revoke_removes_one(tmp_path: Path) -> None:
    env_key = "ock_env_" + secrets.token_urlsafe(24)
    env = {"ORDERCAST_DATABASE_URL": f"sqlite://{tmp_path / 'keys.db'}", "ORDERCAST_API_KEYS": env_key}
    key = ordercast("apikey", "create", "--name", "backend", env=env).stdout.strip()
    listed = ordercast("apikey", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert key not in listed.stdout
    assert env_key not in listed.stdout
    (ours,) = [line.split("\t") for line in listed.stdout.splitlines() if "backend" in line]
    key_id, admin, prefix = ours[:3]
    assert (admin, prefix) == ("service", key[:12] + "…")
    (from_env,) = [line.split("\t") for line in listed.stdout.splitlines() if "not revocable" in line]

    revoked = ordercast("apikey", "revoke", key_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert key_id not in ordercast("apikey", "list", env=env).stdout
    for bad, message in [
        (key_id, f"no API key {key_id}"),
        ("garbage", "no API key garbage"),
        (from_env[0], "comes from ORDERCAST_API_KEYS"),
    ]:
        refused = ordercast("apikey", "revoke", bad, env=env)
        assert refused.returncode == 1
        assert refused.stderr.count("\n") == 1
        assert message in refused.stderr


def test_admin_disable_and_enable_show_in_the_list(tmp_path: Path) -> None:
    env = {"ORDERCAST_DATABASE_URL": f"sqlite://{tmp_path / 'admins.db'}"}
    assert (
        ordercast("admin", "create", "--email", "ops@example.com", "--password", "s3cret-pass", env=env).returncode == 0
    )
    assert "ops@example.com\tactive\t" in ordercast("admin", "list", env=env).stdout
    disabled = ordercast("admin", "disable", "ops@example.com", env=env)
    assert disabled.returncode == 0, disabled.stderr
    assert "ops@example.com\tdisabled\t" in ordercast("admin", "list", env=env).stdout
    assert ordercast("admin", "enable", "ops@example.com", env=env).returncode == 0
    assert "ops@example.com\tactive\t" in ordercast("admin", "list", env=env).stdout
    missing = ordercast("admin", "disable", "nobody@example.com", env=env)
    assert missing.returncode == 1
    assert missing.stderr == "ordercast: no admin 'nobody@example.com'\n"


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


def test_prune_runs_one_retention_pass_and_says_what_went(tmp_path: Path) -> None:
    env = {"ORDERCAST_DATABASE_URL": f"sqlite://{tmp_path / 'prune.db'}"}
    result = ordercast("prune", env=env)
    assert result.returncode == 0, result.stderr
    counts = dict(line.split("\t") for line in result.stdout.splitlines())
    assert set(counts) >= {"deliveries", "notifications", "alerts", "idempotency_keys", "webhook_receipts"}
    assert all(value == "0" for value in counts.values())
