"""The notification centre: every admin gets their own copy of each notification, reads, reads all and
deletes only their own, and every open dashboard hears of it (with the new unread count)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from tests.conftest import API_KEY, ServerProcess, new_customer, new_order, wait_for
from tests.server.test_auth_and_bad_input import logged_in
from tests.streams import SSEReader, sse


async def notifications_of(client: httpx.AsyncClient, order: dict[str, Any]) -> list[dict[str, Any]]:
    items = (await client.get("/api/v1/notifications", params={"limit": 20})).json()["items"]
    return [item for item in items if item["order_id"] == order["id"]]


async def unread(client: httpx.AsyncClient) -> int:
    response = await client.get("/api/v1/notifications/unread-count")
    assert response.status_code == 200, response.text
    return int(response.json()["count"])


def events_about(reader: SSEReader, kind: str, **data: Any) -> list[dict[str, Any]]:
    return [
        message.data["data"]
        for message in reader.of_type(kind)
        if all(message.data["data"].get(name) == value for name, value in data.items())
    ]


async def test_every_admin_gets_their_own_copy_and_only_touches_their_own(
    client: httpx.AsyncClient, server: ServerProcess
) -> None:
    async with logged_in(server) as browser:
        origin = {"Origin": server.base_url}
        before = await unread(browser)
        customer = await new_customer(client)
        order = await new_order(client, customer["id"])
        [mine] = await notifications_of(browser, order)
        [theirs] = await notifications_of(client, order)
        assert mine["id"] != theirs["id"]
        assert (mine["title"], mine["category"], mine["priority"]) == (
            f"New order #{order['number']}",
            "orders",
            "normal",
        )
        assert mine["url"] == f"/?order={order['id']}"
        assert mine["read_at"] is None
        assert await unread(browser) == before + 1

        # The API key's admin can't read or delete the signed-in admin's notification: it isn't theirs.
        assert (await client.post(f"/api/v1/notifications/{mine['id']}/read")).status_code == 404
        assert (await client.delete(f"/api/v1/notifications/{mine['id']}")).status_code == 404
        read = await client.post(f"/api/v1/notifications/{theirs['id']}/read")
        assert read.status_code == 200
        assert read.json()["read_at"] is not None
        assert await unread(browser) == before + 1
        assert (await browser.post(f"/api/v1/notifications/{mine['id']}/read", headers=origin)).status_code == 200
        assert await unread(browser) == before

        token = (await client.post(f"/api/v1/customers/{customer['id']}/stream-token", json={})).json()["token"]
        as_customer = {"Authorization": f"Bearer {token}"}
        for method, path in [
            ("GET", "/api/v1/notifications"),
            ("GET", "/api/v1/notifications/unread-count"),
            ("GET", "/api/v1/alerts"),
            ("GET", "/api/v1/me/preferences"),
            ("POST", "/api/v1/push/test"),
        ]:
            response = await browser.request(method, path, headers=as_customer)
            assert response.status_code == 403, path


async def test_reading_and_deleting_tell_every_open_dashboard_the_unread_count(
    client: httpx.AsyncClient, server: ServerProcess
) -> None:
    async with logged_in(server) as browser, sse(browser) as stream:
        origin = {"Origin": server.base_url}
        await wait_for(lambda: stream.comments or stream.messages or stream.retry, message="the stream to open")
        customer = await new_customer(client)
        orders = [await new_order(client, customer["id"]) for _ in range(3)]
        ids = [(await notifications_of(browser, order))[0]["id"] for order in orders]

        def mine_created() -> list[dict[str, Any]] | None:
            events = [e for e in events_about(stream, "notification.created") if e["notification"]["id"] in ids]
            return events if len(events) == 3 else None

        created = await wait_for(mine_created, message="the three notification.created events")
        me = created[0]["user_id"]
        assert {event["user_id"] for event in created} == {me}
        assert [event["notification"]["id"] for event in created] == ids
        counts = [event["unread_count"] for event in created]
        assert counts == sorted(counts)
        assert counts[-1] - counts[0] == 2
        # The other admin's copies pass on the same stream: a dashboard shows only its own user's.
        assert any(event["user_id"] != me for event in events_about(stream, "notification.created"))

        total = await unread(browser)
        assert (await browser.post(f"/api/v1/notifications/{ids[0]}/read", headers=origin)).status_code == 200
        [read] = await wait_for(lambda: events_about(stream, "notification.read", user_id=me), message="read")
        assert read == {"user_id": me, "ids": [ids[0]], "unread_count": total - 1}
        # Reading it again changes nothing and tells no one.
        assert (await browser.post(f"/api/v1/notifications/{ids[0]}/read", headers=origin)).status_code == 200

        deleted = await browser.delete(f"/api/v1/notifications/{ids[1]}", headers=origin)
        assert deleted.status_code == 204
        [gone] = await wait_for(lambda: events_about(stream, "notification.deleted", user_id=me), message="deleted")
        assert gone == {"user_id": me, "id": ids[1], "unread_count": total - 2}
        assert (await browser.delete(f"/api/v1/notifications/{ids[1]}", headers=origin)).status_code == 404

        everything = await browser.post("/api/v1/notifications/read-all", headers=origin)
        assert everything.json() == {"count": 0}
        await wait_for(lambda: len(events_about(stream, "notification.read", user_id=me)) >= 2, message="read-all")
        read_all = events_about(stream, "notification.read", user_id=me)[1]
        assert read_all == {"user_id": me, "all": True, "unread_count": 0}
        assert await unread(browser) == 0
        assert (await browser.get("/api/v1/notifications", params={"unread": "true"})).json()["items"] == []
        assert len(events_about(stream, "notification.read", user_id=me)) == 2
        # No Origin: a cookie can't change anything.
        assert (await browser.post("/api/v1/notifications/read-all")).status_code == 403


async def test_notifications_are_listed_newest_first_filtered_and_paginated(client: httpx.AsyncClient) -> None:
    await client.post("/api/v1/notifications/read-all")
    customer = await new_customer(client)
    orders = [await new_order(client, customer["id"]) for _ in range(3)]
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"unread": "true", "limit": "2", **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/v1/notifications", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [item["order_id"] for item in seen] == [order["id"] for order in reversed(orders)]
    assert await unread(client) == 3
    read = (await client.get("/api/v1/notifications", params={"unread": "false", "limit": "1"})).json()["items"]
    assert read
    assert read[0]["read_at"] is not None
    first = (await client.get("/api/v1/notifications", params={"limit": "1"})).json()["next_cursor"]
    for params in (
        {"unread": "maybe"},
        {"limit": "0"},
        {"limit": "201"},
        {"cursor": "garbage"},
        {"cursor": first, "unread": "true"},  # a cursor is bound to its filters
    ):
        response = await client.get("/api/v1/notifications", params=params)
        assert response.status_code == 400, params
    for bad in ("ntf_nope", "evt_01m8sx4g7vbvanswfchhnx3shn", "x" * 300):
        assert (await client.post(f"/api/v1/notifications/{bad}/read")).status_code == 404
        assert (await client.delete(f"/api/v1/notifications/{bad}")).status_code == 404


async def test_concurrent_changes_keep_the_unread_count_exact(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    before = await unread(client)
    await asyncio.gather(*(new_order(client, customer["id"]) for _ in range(20)))
    await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
    assert await unread(client) == before + 21
    await client.post("/api/v1/notifications/read-all")
    assert await unread(client) == 0


async def test_preferences_default_on_and_change_only_what_is_named(client: httpx.AsyncClient) -> None:
    everything_on = {
        category: {"push": True, "in_app": True} for category in ("orders", "payments", "alerts", "system")
    }
    assert (await client.get("/api/v1/me/preferences")).json() == everything_on
    try:
        changed = await client.put("/api/v1/me/preferences", json={"alerts": {"push": False}, "system": {}})
        assert changed.status_code == 200
        assert changed.json() == {**everything_on, "alerts": {"push": False, "in_app": True}}
        assert (await client.get("/api/v1/me/preferences")).json() == changed.json()
        for body in (
            {"alerts": None},
            {"alerts": {"push": None}},
            {"alerts": {"push": "no"}},
            {"alerts": {"email": True}},
            {"reviews": {"push": True}},
            [],
        ):
            response = await client.put("/api/v1/me/preferences", json=body)
            assert response.status_code in (400, 422), body
        assert (await client.get("/api/v1/me/preferences")).json() == changed.json()
    finally:
        assert (await client.put("/api/v1/me/preferences", json=everything_on)).json() == everything_on


async def test_alert_routes_refuse_bad_input(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/alerts", params={"resolved": "maybe"})).status_code == 400
    assert (await client.post("/api/v1/alerts/alr_nope/resolve")).status_code == 404
    assert (await client.post("/api/v1/alerts/alr_01m8sx4g7vbvanswfchhnx3shn/resolve")).status_code == 404
    assert (await client.post("/api/v1/alerts/alr_nope/resolve", json={"note": 5})).status_code == 422


async def test_notifications_past_their_retention_are_deleted(
    start_server: Callable[..., Awaitable[ServerProcess]],
) -> None:
    # Three seconds for read and unread ones alike, looked at five times a second.
    expiring = await start_server(retention_days=3 / 86_400, notification_ttl_days=3 / 86_400, retention_interval=0.2)
    try:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            httpx.AsyncClient(base_url=expiring.base_url, headers=headers, timeout=10) as client,
            sse(client) as stream,
        ):
            customer = await new_customer(client)
            order = await new_order(client, customer["id"])
            [note] = await notifications_of(client, order)
            assert await unread(client) >= 1
            # One is read before it expires: open dashboards must drop it as well.
            read_one = await new_order(client, customer["id"])
            [read_note] = await notifications_of(client, read_one)
            assert (await client.post(f"/api/v1/notifications/{read_note['id']}/read")).status_code == 200

            async def expired() -> bool:
                gone = not await notifications_of(client, order) and not await notifications_of(client, read_one)
                return gone and await unread(client) == 0

            await wait_for(expired, message="the notifications to expire")
            for expired_note in (note, read_note):
                await wait_for(
                    lambda n=expired_note: events_about(stream, "notification.deleted", id=n["id"]),
                    message="a notification.deleted event for each expired notification",
                )
            [deleted] = events_about(stream, "notification.deleted", id=read_note["id"])
            assert deleted["unread_count"] == 0
    finally:
        await asyncio.to_thread(expiring.stop)


@pytest.fixture(autouse=True)
def _no_traceback(server: ServerProcess) -> Any:
    yield
    assert "Traceback" not in server.output(), server.output()[-3000:]
