"""Sessions are rows: listed, ended by logout, by the admin, by a password change, refused at once once ended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.accounts import form_login, new_admin, session_cookie, signed_in
from tests.conftest import ServerProcess, wait_for


@pytest.fixture(scope="module")
async def accounts_server(start_server: Callable[..., Any]) -> ServerProcess:
    return await start_server(auth_cache_ttl=0.3)  # type: ignore[no-any-return]


async def refused(server: ServerProcess, cookie: str) -> bool:
    """Whether the cookie is refused by the API (401) and by the dashboard (to the login form)."""
    async with httpx.AsyncClient(base_url=server.base_url, cookies={"ordercast_session": cookie}) as replay:
        api = await replay.get("/api/v1/me/sessions")
        page = await replay.get("/")
    assert api.status_code in {200, 401}
    return api.status_code == 401 and page.status_code == 303 and page.headers["location"].startswith("/login")


async def test_logout_ends_the_session_so_a_copy_of_its_cookie_is_refused(accounts_server: ServerProcess) -> None:
    email, password = await new_admin(accounts_server)
    async with signed_in(accounts_server, email, password) as browser:
        cookie = session_cookie(browser)
        assert not await refused(accounts_server, cookie)
        assert (await browser.post("/logout")).status_code == 303
    assert await refused(accounts_server, cookie)


async def test_sessions_are_listed_and_one_can_end_another(accounts_server: ServerProcess) -> None:
    email, password = await new_admin(accounts_server)
    async with (
        signed_in(accounts_server, email, password, headers={"User-Agent": "laptop"}) as laptop,
        signed_in(accounts_server, email, password, headers={"User-Agent": "phone"}) as phone,
    ):
        listed = await laptop.get("/api/v1/me/sessions")
        assert listed.status_code == 200
        items = listed.json()["items"]
        assert [(s["user_agent"], s["current"]) for s in items] == [("phone", False), ("laptop", True)]
        assert all(s["id"].startswith("ses_") and s["ip"] == "127.0.0.1" for s in items)
        assert all(s["created_at"].endswith("Z") and s["last_seen_at"].endswith("Z") for s in items)
        phone_id = items[0]["id"]
        foreign = await laptop.delete(f"/api/v1/me/sessions/{phone_id}", headers={"Origin": "https://evil.example"})
        assert foreign.json()["error"]["code"] == "csrf"
        assert (await laptop.delete(f"/api/v1/me/sessions/{phone_id}")).status_code == 204
        # Refused at once by the process that ended it, whatever its cache.
        assert (await phone.get("/api/v1/me/sessions")).status_code == 401
        assert await refused(accounts_server, session_cookie(phone))
        assert (await laptop.delete(f"/api/v1/me/sessions/{phone_id}")).status_code == 404
        for bad in ("ses_nope", "ses_%00", "x" * 300):
            response = await laptop.delete(f"/api/v1/me/sessions/{bad}")
            assert response.status_code == 404
            assert response.json()["error"]["code"] == "not_found"
        assert [s["user_agent"] for s in (await laptop.get("/api/v1/me/sessions")).json()["items"]] == ["laptop"]


async def test_another_admins_session_cannot_be_seen_or_ended(accounts_server: ServerProcess) -> None:
    (alice, alice_pw), (bob, bob_pw) = await new_admin(accounts_server), await new_admin(accounts_server)
    async with signed_in(accounts_server, alice, alice_pw) as a, signed_in(accounts_server, bob, bob_pw) as b:
        (bobs,) = (await b.get("/api/v1/me/sessions")).json()["items"]
        assert bobs["id"] not in {s["id"] for s in (await a.get("/api/v1/me/sessions")).json()["items"]}
        assert (await a.delete(f"/api/v1/me/sessions/{bobs['id']}")).status_code == 404
        assert (await b.get("/api/v1/me/sessions")).status_code == 200


async def test_revoke_others_ends_every_session_but_the_current(accounts_server: ServerProcess) -> None:
    email, password = await new_admin(accounts_server)
    async with (
        signed_in(accounts_server, email, password) as keeper,
        signed_in(accounts_server, email, password) as second,
        signed_in(accounts_server, email, password) as third,
    ):
        missing_origin = await keeper.post("/api/v1/me/sessions/revoke-others", headers={"Origin": ""})
        assert missing_origin.status_code == 403
        response = await keeper.post("/api/v1/me/sessions/revoke-others")
        assert response.status_code == 200
        assert response.json() == {"ended": 2}
        assert await refused(accounts_server, session_cookie(second))
        assert await refused(accounts_server, session_cookie(third))
        assert len((await keeper.get("/api/v1/me/sessions")).json()["items"]) == 1


async def test_a_password_change_ends_every_other_session(accounts_server: ServerProcess) -> None:
    email, password = await new_admin(accounts_server)
    new_password = "a much better passphrase"
    async with (
        signed_in(accounts_server, email, password) as current,
        signed_in(accounts_server, email, password) as other,
    ):
        wrong = await current.post("/api/v1/me/password", json={"current": "not it", "new": new_password})
        assert wrong.status_code == 403
        short = await current.post("/api/v1/me/password", json={"current": password, "new": "short"})
        assert short.status_code == 422
        assert set(short.json()["error"]["details"]["fields"]) == {"new"}
        for body in (b"{", b"[]"):
            malformed = await current.post("/api/v1/me/password", content=body)
            assert malformed.status_code == 400
        unknown = await current.post("/api/v1/me/password", json={"current": password, "new": new_password, "x": 1})
        assert unknown.status_code == 422
        assert not await refused(accounts_server, session_cookie(other))

        changed = await current.post("/api/v1/me/password", json={"current": password, "new": new_password})
        assert changed.status_code == 200
        assert changed.json() == {"ended": 1}
        assert await refused(accounts_server, session_cookie(other))
        assert (await current.get("/api/v1/me/sessions")).status_code == 200
    async with httpx.AsyncClient(base_url=accounts_server.base_url) as browser:
        assert (await browser.post("/login", data=form_login(email, password))).status_code == 401
        assert (await browser.post("/login", data=form_login(email, new_password))).status_code == 303


async def test_a_session_ended_on_one_process_is_refused_by_another_within_the_cache_ttl(
    start_pg_server: Callable[..., Any],
) -> None:
    a: ServerProcess = await start_pg_server(auth_cache_ttl=0.5)
    b: ServerProcess = await start_pg_server(auth_cache_ttl=0.5)
    email, password = await new_admin(a)
    async with signed_in(a, email, password) as browser:
        cookie = session_cookie(browser)
        assert not await refused(b, cookie)
        assert (await browser.post("/logout")).status_code == 303
    await wait_for(lambda: refused(b, cookie), timeout=5, message="the other process to refuse the ended session")
