"""Streams and their credentials: ended when it expires or is revoked, capped per credential, reasons told."""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable

import orjson
import pytest
from starlette.requests import HTTPConnection
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from ordercast.events import ADMIN_CHANNEL
from ordercast.realtime.holders import Grant
from ordercast.realtime.hub import CloseReason, Hub
from ordercast.realtime.memory import MemoryBroker
from ordercast.realtime.transport import Authorize
from tests.realtime.conftest import make_app, make_event, serve, wait_for
from tests.realtime.test_sse import sse
from tests.realtime.test_ws import closed_with


def granting(*, limit: int | None = None, ttl: float | None = None, revocable: bool = False) -> Authorize:
    """Grants the admin channel to `?holder=<name>` with the given limit, lifetime (seconds) and revocability."""

    async def authorize(connection: HTTPConnection) -> Grant:
        expires_at = time.time() + ttl if ttl is not None else None
        holder = connection.query_params["holder"]
        return Grant(ADMIN_CHANNEL, holder=holder, limit=limit, expires_at=expires_at, revocable=revocable)

    return authorize


def ws_url(url: str, holder: str) -> str:
    return url.replace("http://", "ws://") + f"/ws?holder={holder}"


async def test_streams_end_when_their_credential_expires_sse_finished_websocket_4001() -> None:
    closed: list[CloseReason] = []
    broker = MemoryBroker(history_size=100, history_ttl=60)
    async with Hub(broker, on_close=closed.append) as hub, serve(make_app(hub, authorize=granting(ttl=1))) as (url, _):
        async with (
            sse(url, params={"holder": "token"}) as stream,
            connect(ws_url(url, "token"), open_timeout=5) as socket,
        ):
            assert stream.response.status_code == 200
            await wait_for(lambda: hub.connections == 2, message="both streams to subscribe")
            await broker.publish(make_event())
            await wait_for(lambda: stream.messages, message="an event before the expiry")
            assert await closed_with(socket) == 4001
            await wait_for(stream.ended.is_set, timeout=5, message="the SSE stream to end")
        await wait_for(lambda: len(closed) == 2, message="both subscriptions released")
    assert closed == ["expired", "expired"]


async def test_one_stream_beyond_the_credentials_limit_is_refused_with_429() -> None:
    broker = MemoryBroker(history_size=100, history_ttl=60)
    async with Hub(broker) as hub, serve(make_app(hub, authorize=granting(limit=2))) as (url, _):
        async with (
            sse(url, params={"holder": "alice"}) as first,
            connect(ws_url(url, "alice"), open_timeout=5),
        ):
            assert first.response.status_code == 200
            await wait_for(lambda: hub.connections == 2, message="two streams of alice")
            async with sse(url, params={"holder": "alice"}) as third:
                assert third.response.status_code == 429
                await wait_for(third.ended.is_set, message="the refusal's body")
                assert orjson.loads(third.text)["error"]["code"] == "rate_limited"
                assert third.response.headers["retry-after"].isdigit()
            with pytest.raises(InvalidStatus) as refused:
                async with connect(ws_url(url, "alice"), open_timeout=5):
                    pass
            assert refused.value.response.status_code == 429
            assert orjson.loads(refused.value.response.body or b"{}")["error"]["code"] == "rate_limited"
            # The cap is per credential: another one opens its streams.
            async with sse(url, params={"holder": "bob"}) as other:
                assert other.response.status_code == 200
        await wait_for(lambda: hub.connections == 0, message="alice's streams to close")
        # Closed streams give their places back.
        async with sse(url, params={"holder": "alice"}) as again, sse(url, params={"holder": "alice"}) as twice:
            assert (again.response.status_code, twice.response.status_code) == (200, 200)


async def test_the_streams_of_a_revoked_credential_end_on_the_next_check() -> None:
    revoked: set[Hashable] = set()
    asked: list[list[Hashable]] = []

    async def recheck(holders: list[Hashable]) -> Iterable[Hashable]:
        asked.append(holders)
        return [holder for holder in holders if holder in revoked]

    closed: list[CloseReason] = []
    broker = MemoryBroker(history_size=100, history_ttl=60)
    async with (
        Hub(broker, recheck=recheck, recheck_interval=0.1, on_close=closed.append) as hub,
        serve(make_app(hub, authorize=granting(revocable=True))) as (url, _),
        sse(url, params={"holder": "session-1"}) as ended,
        connect(ws_url(url, "session-1"), open_timeout=5) as socket,
        sse(url, params={"holder": "session-2"}) as kept,
    ):
        await wait_for(lambda: hub.connections == 3, message="three streams")
        await wait_for(lambda: asked and set(asked[-1]) == {"session-1", "session-2"}, message="a check of both")
        revoked.add("session-1")
        assert await closed_with(socket) == 4001
        await wait_for(ended.ended.is_set, timeout=5, message="the revoked session's SSE stream to end")
        await wait_for(lambda: asked[-1] == ["session-2"], message="a check of the one left")
        assert not kept.ended.is_set()
        await broker.publish(make_event())
        await wait_for(lambda: kept.messages, message="the other session's stream to go on")
    assert sorted(closed) == ["disconnected", "revoked", "revoked"]


async def test_credentials_that_cannot_be_revoked_are_not_rechecked() -> None:
    asked: list[list[Hashable]] = []

    async def recheck(holders: list[Hashable]) -> Iterable[Hashable]:
        asked.append(holders)
        return holders  # every credential asked about is over

    async def authorize(connection: HTTPConnection) -> Grant:
        holder = connection.query_params["holder"]
        return Grant(ADMIN_CHANNEL, holder=holder, revocable=holder == "session")

    broker = MemoryBroker(history_size=100, history_ttl=60)
    async with (
        Hub(broker, recheck=recheck, recheck_interval=0.05) as hub,
        serve(make_app(hub, authorize=authorize)) as (url, _),
        sse(url, params={"holder": "token"}) as token_stream,
    ):
        await wait_for(lambda: hub.connections == 1, message="the token's stream")
        async with sse(url, params={"holder": "session"}) as session_stream:
            await wait_for(session_stream.ended.is_set, message="the session's stream to end")
        await broker.publish(make_event())
        await wait_for(lambda: token_stream.messages, message="an event on the token's stream")
        assert not token_stream.ended.is_set()
        assert asked
        assert all(holders == ["session"] for holders in asked)


async def test_why_a_stream_ended_is_told_client_gone_slow_or_shutdown() -> None:
    closed: list[CloseReason] = []
    broker = MemoryBroker(history_size=100, history_ttl=60)
    hub = Hub(broker, queue_size=2, on_close=closed.append)
    await hub.start()
    try:
        async with serve(make_app(hub)) as (url, _):
            async with sse(url, params={"token": "admin"}):
                await wait_for(lambda: hub.connections == 1, message="the stream")
            await wait_for(lambda: closed == ["disconnected"], message="the client's leaving")
            async with connect(url.replace("http://", "ws://") + "/ws?token=admin", open_timeout=5) as socket:
                await wait_for(lambda: hub.connections == 1, message="the socket")
                for _ in range(5):  # faster than a queue of two takes them
                    await broker.publish(make_event())
                assert await closed_with(socket) == 4008
            await wait_for(lambda: closed[1:] == ["overflow"], message="the slow socket")
            async with sse(url, params={"token": "admin"}) as stream:
                await wait_for(lambda: hub.connections == 1, message="the stream")
                await hub.close()
                await wait_for(stream.ended.is_set, message="the stream to end at shutdown")
            await wait_for(lambda: closed[2:] == ["shutdown"], message="the shutdown")
    finally:
        await hub.close()
