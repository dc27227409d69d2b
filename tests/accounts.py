"""Helpers for the account tests: browser-like signed-in clients, and the CLI on a server's database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx

from tests.conftest import ROOT, ServerProcess


def form_login(email: str, password: str) -> dict[str, str]:
    return {"email": email, "password": password, "next": "/"}


@contextlib.asynccontextmanager
async def signed_in(
    server: ServerProcess, email: str, password: str, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client with a session of `email` (its unsafe requests carry our Origin)."""
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=10) as client:
        response = await client.post("/login", data=form_login(email, password))
        assert response.status_code == 303, response.text
        client.headers["Origin"] = server.base_url
        yield client


def session_cookie(client: httpx.AsyncClient) -> str:
    return next(c.value for c in client.cookies.jar if c.name == "ordercast_session")  # type: ignore[misc]


async def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """`ordercast ARGS` on the database (and with the API keys) of `server`."""
    env = {
        **os.environ,
        "ORDERCAST_DATABASE_URL": server.env["ORDERCAST_DATABASE_URL"],
        "ORDERCAST_API_KEYS": server.env["ORDERCAST_API_KEYS"],
        "ORDERCAST_SECRET_KEY": server.env["ORDERCAST_SECRET_KEY"],
    }
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ordercast", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def new_admin(server: ServerProcess) -> tuple[str, str]:
    """A fresh admin on `server`'s database: (email, password)."""
    email, password = f"admin-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(12)
    # `--password=…` as one argument: a generated password may start with "-".
    created = await cli(server, "admin", "create", "--email", email, f"--password={password}")
    assert created.returncode == 0, created.stderr
    return email, password
