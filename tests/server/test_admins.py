"""`ordercast admin list | disable | enable`: a disabled admin can't log in, and nothing of theirs still works."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.accounts import cli, form_login, new_admin, session_cookie, signed_in
from tests.conftest import ServerProcess, wait_for
from tests.notify.fakepush import FakePushService


@pytest.fixture(scope="module")
async def admins_server(start_server: Callable[..., Any]) -> ServerProcess:
    return await start_server(auth_cache_ttl=0.3)  # type: ignore[no-any-return]


async def test_a_disabled_admin_loses_sessions_keys_and_pushes_until_enabled(admins_server: ServerProcess) -> None:
    email, password = await new_admin(admins_server)
    async with signed_in(admins_server, email, password) as browser:
        key = (await browser.post("/api/v1/api-keys", json={"name": "theirs"})).json()["key"]
        vapid = (await browser.get("/api/v1/push/vapid-public-key")).json()["key"]
        subscription = FakePushService(url="http://127.0.0.1:9").subscribe(vapid)
        assert (await browser.post("/api/v1/push/subscriptions", json=subscription)).status_code == 201
        cookie = session_cookie(browser)

    listed = await cli(admins_server, "admin", "list")
    assert listed.returncode == 0, listed.stderr
    assert f"{email}\tactive\t" in listed.stdout

    disabled = await cli(admins_server, "admin", "disable", email.upper())
    assert disabled.returncode == 0, disabled.stderr
    assert "1 session(s) ended, 1 API key(s) revoked, 1 push subscription(s) removed" in disabled.stderr
    assert f"{email}\tdisabled\t" in (await cli(admins_server, "admin", "list")).stdout

    async def all_refused() -> bool:
        async with httpx.AsyncClient(base_url=admins_server.base_url, cookies={"ordercast_session": cookie}) as them:
            by_cookie = await them.get("/api/v1/me/sessions")
            by_key = await them.get("/api/v1/api-keys", headers={"Authorization": f"Bearer {key}"})
        return by_cookie.status_code == 401 and by_key.status_code == 401

    await wait_for(all_refused, timeout=5, message="the disabled admin's session and key to be refused")
    async with httpx.AsyncClient(base_url=admins_server.base_url) as browser:
        assert (await browser.post("/login", data=form_login(email, password))).status_code == 401

    enabled = await cli(admins_server, "admin", "enable", email)
    assert enabled.returncode == 0, enabled.stderr
    async with signed_in(admins_server, email, password) as browser:
        assert (await browser.get("/api/v1/me/sessions")).status_code == 200
    assert await all_refused()  # what disabling ended stays ended


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["disable", "nobody@example.com"], "no admin 'nobody@example.com'"),
        (["enable", "nobody@example.com"], "no admin 'nobody@example.com'"),
        (["disable", "service"], "the service admin can't be disabled"),
        (["disable"], "the following arguments are required: email"),
    ],
)
async def test_admin_commands_refuse_a_bad_argument_in_one_line(
    admins_server: ServerProcess, args: list[str], message: str
) -> None:
    result = await cli(admins_server, "admin", *args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
