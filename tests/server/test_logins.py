"""Logins: failures counted atomically per (email, client IP) and per IP, argon2 a few at a time, bounded fields."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.accounts import form_login, signed_in
from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, ServerProcess


@pytest.fixture(scope="module")
async def guarded(start_server: Callable[..., Any]) -> ServerProcess:
    """Small limits, many hashes at once (so only the counting limits), behind a proxy on 127.0.0.1."""
    return await start_server(  # type: ignore[no-any-return]
        login_max_failures=3,
        login_max_failures_per_ip=6,
        password_hash_concurrency=16,
        trusted_proxies="127.0.0.1/32, ::1",
    )


def via(client_ip: str) -> dict[str, str]:
    """Headers of a request the trusted proxy forwards for `client_ip` (after whatever the client sent)."""
    return {"X-Forwarded-For": f"{secrets.token_hex(2)}.example, 10.{secrets.randbelow(250)}.0.1, {client_ip}"}


_hosts = itertools.count(1)


def an_ip() -> str:
    """A client address no other test of the module uses."""
    return f"203.0.113.{next(_hosts)}"


async def attempt(server: ServerProcess, email: str, password: str, client_ip: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
        return await client.post("/login", data=form_login(email, password), headers=via(client_ip))


async def test_parallel_wrong_guesses_are_each_counted(guarded: ServerProcess) -> None:
    ip = an_ip()
    answers = await asyncio.gather(*(attempt(guarded, ADMIN_EMAIL, f"guess-{n}", ip) for n in range(12)))
    statuses = [answer.status_code for answer in answers]
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) <= 3, statuses  # never more guesses judged than the limit
    assert (await attempt(guarded, ADMIN_EMAIL, ADMIN_PASSWORD, ip)).status_code in {303, 429}
    for _ in range(3):
        await attempt(guarded, ADMIN_EMAIL, "one more guess", ip)
    limited = await attempt(guarded, ADMIN_EMAIL, "and another", ip)
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 0 < int(limited.headers["retry-after"]) <= 900


async def test_a_locked_out_pair_does_not_lock_the_admin_out_elsewhere(guarded: ServerProcess) -> None:
    attacker, admin = an_ip(), an_ip()
    for _ in range(3):
        assert (await attempt(guarded, ADMIN_EMAIL, "wrong", attacker)).status_code == 401
    assert (await attempt(guarded, ADMIN_EMAIL, "wrong", attacker)).status_code == 429
    # Even the right password is refused for the locked pair: the attacker learns nothing more.
    assert (await attempt(guarded, ADMIN_EMAIL, ADMIN_PASSWORD, attacker)).status_code == 429
    assert (await attempt(guarded, ADMIN_EMAIL, ADMIN_PASSWORD, admin)).status_code == 303


async def test_failures_from_one_ip_across_emails_are_limited(guarded: ServerProcess) -> None:
    ip = an_ip()
    for n in range(6):
        response = await attempt(guarded, f"user{n}-{secrets.token_hex(3)}@example.com", "wrong", ip)
        assert response.status_code == 401
    assert (await attempt(guarded, f"other-{secrets.token_hex(3)}@example.com", "wrong", ip)).status_code == 429
    assert (await attempt(guarded, ADMIN_EMAIL, ADMIN_PASSWORD, ip)).status_code == 429
    assert (await attempt(guarded, ADMIN_EMAIL, ADMIN_PASSWORD, an_ip())).status_code == 303


async def test_the_client_is_the_right_most_hop_a_trusted_proxy_names(guarded: ServerProcess) -> None:
    ip = an_ip()
    async with signed_in(guarded, ADMIN_EMAIL, ADMIN_PASSWORD, headers=via(ip)) as browser:
        sessions = (await browser.get("/api/v1/me/sessions")).json()["items"]
    assert [s["ip"] for s in sessions if s["current"]] == [ip]


async def test_an_untrusted_peer_cannot_name_its_address(server: ServerProcess) -> None:
    async with signed_in(server, ADMIN_EMAIL, ADMIN_PASSWORD, headers={"X-Forwarded-For": "192.0.2.1"}) as browser:
        sessions = (await browser.get("/api/v1/me/sessions")).json()["items"]
    assert [s["ip"] for s in sessions if s["current"]] == ["127.0.0.1"]


async def test_a_flood_of_logins_is_refused_at_once_not_queued(start_server: Callable[..., Any]) -> None:
    narrow: ServerProcess = await start_server(password_hash_concurrency=1)
    email = f"flood-{secrets.token_hex(4)}@example.com"
    async with httpx.AsyncClient(base_url=narrow.base_url, timeout=30) as client:
        answers = await asyncio.gather(*(client.post("/login", data=form_login(email, "wrong")) for _ in range(8)))
    statuses = sorted(answer.status_code for answer in answers)
    assert 401 in statuses
    assert 429 in statuses, statuses
    busy = next(answer for answer in answers if answer.status_code == 429)
    assert busy.json()["error"]["code"] == "rate_limited"
    assert busy.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    ("email", "password"),
    [("a" * 100_000 + "@example.com", "wrong"), ("b" * 321, "wrong"), (ADMIN_EMAIL, "p" * 1025)],
)
async def test_an_oversized_login_field_is_400_and_never_logged(
    anonymous: httpx.AsyncClient, server: ServerProcess, email: str, password: str
) -> None:
    response = await anonymous.post("/login", data=form_login(email, password))
    assert response.status_code == 400
    assert "at most 320 characters" in response.text
    assert "<form" in response.text
    assert email[:400] not in server.output()
    assert password[:400] not in server.output()
