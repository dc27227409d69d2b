"""Credentials end their streams (API.md, Auth): a token's at its expiry, a session's within a ping interval of
its end, an API key's within the auth cache's TTL of its revocation; and a credential holds only so many."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.accounts import new_admin, signed_in
from tests.conftest import API_KEY, ServerProcess, new_customer, wait_for
from tests.streams import SSEReader, WSReader, sse, ws

AUTH = {"Authorization": f"Bearer {API_KEY}"}
# Every test server's ORDERCAST_PING_INTERVAL (tests/conftest.py).
PING = 1.0
# What a loaded two-core machine adds: the check's query, the close reaching the client.
SLACK = 2.0
# The module server's settings.
PER_CREDENTIAL = 3
AUTH_CACHE_TTL = 2.0


@pytest.fixture(scope="module")
async def capped(start_server: Callable[..., Any]) -> ServerProcess:
    server: ServerProcess = await start_server(max_streams_per_credential=PER_CREDENTIAL, auth_cache_ttl=AUTH_CACHE_TTL)
    return server


@pytest.fixture
async def admin(capped: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=capped.base_url, headers=AUTH, timeout=10) as client:
        yield client


async def disconnects(server: ServerProcess, reason: str) -> float:
    """`ordercast_stream_disconnects_total{reason=…}` of the server, as /metrics reads now."""
    async with httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as client:
        text = (await client.get("/metrics")).text
    prefix = f'ordercast_stream_disconnects_total{{reason="{reason}"}} '
    values = [float(line.removeprefix(prefix)) for line in text.splitlines() if line.startswith(prefix)]
    assert values, f"no {prefix.strip()} in /metrics"
    return values[0]


def cookie_headers(server: ServerProcess, browser: httpx.AsyncClient) -> dict[str, str]:
    """What a browser's WebSocket upgrade carries: its session cookie and our Origin."""
    cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
    return {"Cookie": cookie, "Origin": server.base_url}


async def ended_within(streams: list[SSEReader | WSReader], seconds: float) -> None:
    """Every stream ends within `seconds`; each WebSocket with close code 4001."""
    events = [s.ended if isinstance(s, SSEReader) else s.closed for s in streams]
    await asyncio.wait_for(asyncio.gather(*(e.wait() for e in events)), seconds)
    assert [s.close_code for s in streams if isinstance(s, WSReader)] == [4001] * sum(
        isinstance(s, WSReader) for s in streams
    )


def still_open(streams: list[SSEReader | WSReader]) -> bool:
    return not any(s.ended.is_set() if isinstance(s, SSEReader) else s.closed.is_set() for s in streams)


async def test_a_customer_tokens_streams_end_when_it_expires(admin: httpx.AsyncClient, capped: ServerProcess) -> None:
    before = await disconnects(capped, "expired")
    customer = await new_customer(admin)
    issued = (await admin.post(f"/api/v1/customers/{customer['id']}/stream-token", json={"ttl_seconds": 3})).json()
    token, expires_at = issued["token"], datetime.fromisoformat(issued["expires_at"]).timestamp()
    async with (
        httpx.AsyncClient(base_url=capped.base_url, timeout=10) as anonymous,
        sse(anonymous, params={"token": token}) as stream,
        ws(capped.base_url, query=f"token={token}") as socket,
    ):
        assert stream.response.status_code == 200
        await ended_within([stream, socket], expires_at - time.time() + SLACK)
        assert time.time() >= expires_at - 0.1, "ended before the token expired"
        async with sse(anonymous, params={"token": token}) as again:
            assert again.response.status_code == 401
            await again.response.aread()
            assert again.response.json()["error"]["code"] == "token_expired"
    await wait_for(lambda: _counted(capped, "expired", before + 2), message="two expired disconnects in the metrics")


async def _counted(server: ServerProcess, reason: str, at_least: float) -> bool:
    return await disconnects(server, reason) >= at_least


@pytest.mark.parametrize("how", ["logout", "deleted by another session", "password change"])
async def test_a_sessions_streams_end_within_a_ping_interval_of_it_ending(capped: ServerProcess, how: str) -> None:
    before = await disconnects(capped, "revoked")
    email, password = await new_admin(capped)
    async with (
        signed_in(capped, email, password) as doomed,
        signed_in(capped, email, password) as other,
        sse(doomed) as doomed_sse,
        ws(capped.base_url, headers=cookie_headers(capped, doomed)) as doomed_ws,
        sse(other) as other_sse,
    ):
        await wait_for(lambda: doomed_sse.retry is not None and other_sse.retry is not None, message="the streams")
        if how == "logout":
            assert (await doomed.post("/logout")).status_code == 303
        elif how == "deleted by another session":
            sessions = (await other.get("/api/v1/me/sessions")).json()["items"]
            [doomed_id] = [s["id"] for s in sessions if not s["current"]]
            assert (await other.delete(f"/api/v1/me/sessions/{doomed_id}")).status_code == 204
        else:
            change = {"current": password, "new": "a much better passphrase"}
            # The session that changes the password keeps its streams; every other one ends.
            assert (await other.post("/api/v1/me/password", json=change)).status_code == 200
        await ended_within([doomed_sse, doomed_ws], PING + SLACK)
        assert still_open([other_sse])
    await wait_for(lambda: _counted(capped, "revoked", before + 2), message="two revoked disconnects in the metrics")


async def test_an_api_keys_streams_end_within_the_cache_ttl_of_its_revocation(
    admin: httpx.AsyncClient, capped: ServerProcess
) -> None:
    created = (await admin.post("/api/v1/api-keys", json={"name": "dashboard-wall"})).json()
    headers = {"Authorization": f"Bearer {created['key']}"}
    async with (
        httpx.AsyncClient(base_url=capped.base_url, headers=headers, timeout=10) as backend,
        sse(backend) as stream,
        ws(capped.base_url, headers=headers) as socket,
        sse(admin) as unrelated,
    ):
        await wait_for(lambda: stream.retry is not None and unrelated.retry is not None, message="the streams")
        assert (await admin.delete(f"/api/v1/api-keys/{created['id']}")).status_code == 204
        await ended_within([stream, socket], AUTH_CACHE_TTL + SLACK)
        # Keys from ORDERCAST_API_KEYS are not revocable: their streams go on.
        assert still_open([unrelated])


async def test_a_session_ended_on_another_process_ends_its_streams_here_within_a_ping_interval(
    start_pg_server: Callable[..., Any],
) -> None:
    # The default auth cache (30 s) would accept the session here for that long; its streams end sooner.
    a: ServerProcess = await start_pg_server()
    b: ServerProcess = await start_pg_server()
    email, password = await new_admin(a)
    async with (
        signed_in(a, email, password) as browser,
        httpx.AsyncClient(base_url=b.base_url, cookies=browser.cookies, timeout=10) as on_b,
        sse(on_b) as stream,
        ws(b.base_url, headers={**cookie_headers(a, browser), "Origin": b.base_url}) as socket,
    ):
        await wait_for(lambda: stream.retry is not None, message="the stream on the other process")
        assert (await browser.post("/logout")).status_code == 303
        await ended_within([stream, socket], PING + SLACK)


async def test_one_stream_beyond_the_limit_per_session_or_token_is_refused_with_429(
    admin: httpx.AsyncClient, capped: ServerProcess
) -> None:
    customer = await new_customer(admin)
    token = (await admin.post(f"/api/v1/customers/{customer['id']}/stream-token")).json()["token"]
    email, password = await new_admin(capped)
    async with (
        signed_in(capped, email, password) as browser,
        httpx.AsyncClient(base_url=capped.base_url, timeout=10) as anonymous,
    ):
        socket_headers = cookie_headers(capped, browser)
        for client, params, headers in [
            (browser, None, socket_headers),
            (anonymous, {"token": token}, {"Authorization": f"Bearer {token}"}),
        ]:
            async with (
                sse(client, params=params) as first,
                sse(client, params=params) as second,
                ws(capped.base_url, headers=headers) as third,
            ):
                assert (first.response.status_code, second.response.status_code) == (200, 200)
                async with sse(client, params=params) as fourth:
                    assert fourth.response.status_code == 429
                    await fourth.response.aread()
                    assert fourth.response.json()["error"]["code"] == "rate_limited"
                    assert int(fourth.response.headers["retry-after"]) > 0
                with pytest.raises(InvalidStatus) as refused:
                    async with ws(capped.base_url, headers=headers):
                        pass
                assert refused.value.response.status_code == 429
                assert still_open([first, second, third])
            # Streams that closed give their places back.
            await wait_for(lambda c=client, p=params: _opens(c, p), message="a stream once the others closed")


async def _opens(client: httpx.AsyncClient, params: dict[str, str] | None) -> bool:
    async with sse(client, params=params) as stream:
        return stream.response.status_code == 200


async def test_api_keys_are_not_capped_unless_max_streams_per_api_key_is_set(
    admin: httpx.AsyncClient, start_server: Callable[..., Any]
) -> None:
    async with (
        sse(admin) as s1,
        sse(admin) as s2,
        sse(admin) as s3,
        sse(admin) as s4,
    ):
        assert [s.response.status_code for s in (s1, s2, s3, s4)] == [200] * (PER_CREDENTIAL + 1)
    keyed: ServerProcess = await start_server(max_streams_per_api_key=2)
    async with (
        httpx.AsyncClient(base_url=keyed.base_url, headers=AUTH, timeout=10) as backend,
        sse(backend) as first,
        ws(keyed.base_url, headers=AUTH),
    ):
        assert first.response.status_code == 200
        async with sse(backend) as third:
            assert third.response.status_code == 429
