"""Web Push end to end: a real server pushes to a fake push service that checks and decrypts like a
browser vendor's, and each of the service's answers (404, 410, 429, 5xx, timeouts, 400/403/413) gets
its reaction."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess, new_customer, new_order, wait_for
from tests.notify.conftest import Device, Subscribe, deliveries, settled
from tests.notify.fakepush import GONE, NOT_FOUND, SERVER_ERROR, Failure, FakePushService, Push, throttled, token_of

PUSH_TTL = 86_400  # the servers' default


async def change(client: httpx.AsyncClient, order: dict[str, Any], status: str, **fields: Any) -> None:
    response = await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": status, **fields})
    assert response.status_code == 200, response.text


def about(order: dict[str, Any]) -> Callable[[Push], bool]:
    return lambda push: push.payload["url"].endswith(f"?order={order['id']}")


async def pushes_about(fake: FakePushService, device: Device, order: dict[str, Any], count: int) -> list[Push]:
    async def arrived() -> list[Push] | None:
        pushes = [push for push in fake.received(device.subscription) if about(order)(push)]
        return pushes if len(pushes) >= count else None

    result: list[Push] = await wait_for(arrived, message=f"{count} pushes about {order['number']}")
    return result


async def test_each_status_change_reaches_every_device_signed_and_encrypted(
    client: httpx.AsyncClient, server: ServerProcess, fake: FakePushService, subscribe: Subscribe
) -> None:
    phone, laptop = await subscribe(), await subscribe()
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await change(client, order, "paid")
    number, started = f"#{order['number']}", time.time()
    for device in (phone, laptop):
        created, paid = await pushes_about(fake, device, order, 2)
        assert (created.title, created.body) == (f"New order {number}", f"Order {number}: €9.90 from 2 × Tea")
        assert paid.title == f"Payment received for {number}"
        assert paid.body == f"Order {number} is paid: €9.90. Confirm it to start packing."
        assert (created.urgency, paid.urgency) == ("normal", "high")
        assert created.topic == paid.topic == order["id"]  # a newer push about the order replaces an unseen one
        assert created.payload == {
            "title": created.title,
            "body": created.body,
            "url": f"{server.base_url}/?order={order['id']}",
            "tag": f"order-{order['id']}",
        }
        assert created.ttl == paid.ttl == PUSH_TTL
        assert created.claims["aud"] == fake.url
        assert created.claims["sub"] == "mailto:admin@localhost"
        assert 11 * 3600 < created.claims["exp"] - started <= 12 * 3600
    assert fake.refused == []
    rows = await settled(client, 4, order)
    assert sorted(row["recipient"] for row in rows) == sorted([phone.id, laptop.id] * 2)
    assert {(row["status"], row["attempts"]) for row in rows} == {("sent", 1)}
    # One VAPID token signed for this push service, reused for every push while it is valid.
    assert len({push.jwt for push in fake.received(phone.subscription) + fake.received(laptop.subscription)}) == 1

    stats = (await client.get("/api/v1/deliveries/stats")).json()["push"]
    assert stats["sent"] >= 4
    assert 0 <= stats["p50_seconds"] <= stats["p95_seconds"] < 10
    metrics = (await client.get("/metrics")).text
    assert f'ordercast_push_responses_total{{service="{fake.url.removeprefix("http://")}",status="201"}}' in metrics
    assert 'ordercast_deliveries_total{channel="push",result="sent"}' in metrics


async def test_the_test_push_reaches_each_device_of_the_caller(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe
) -> None:
    response = await client.post("/api/v1/push/test")
    assert (response.status_code, response.json()["error"]["code"]) == (409, "conflict")
    devices = [await subscribe(), await subscribe()]
    response = await client.post("/api/v1/push/test")
    assert response.status_code == 200
    assert response.json() == {"queued": 2}
    for device in devices:
        [push] = await fake.wait_pushes(device.subscription, 1)
        assert (push.title, push.body) == ("Test notification", "Push notifications from ordercast reach this device.")
    latest = (await client.get("/api/v1/notifications", params={"limit": 1})).json()["items"][0]
    assert (latest["category"], latest["title"]) == ("system", "Test notification")


@pytest.mark.parametrize("failure", [GONE, NOT_FOUND], ids=["410", "404"])
async def test_a_gone_subscription_is_deleted_and_its_queued_pushes_skipped(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe, failure: Failure
) -> None:
    phone = await subscribe()
    fake.hold(phone.subscription)
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await wait_for(lambda: fake.arrivals[token_of(phone.subscription)], message="the held push")
    fake.fail_next(phone.subscription, failure)
    await change(client, order, "paid")  # queued behind the held push
    fake.release(phone.subscription)
    first, second = await settled(client, 2, order, phone)
    assert (first["status"], first["attempts"]) == ("skipped", 1)
    assert first["last_error"] == f"http_{failure.status}"
    assert (second["status"], second["attempts"]) == ("skipped", 0)
    gone = await client.request(
        "DELETE", "/api/v1/push/subscriptions", json={"endpoint": phone.subscription["endpoint"]}
    )
    assert gone.status_code == 404  # deleted already
    await change(client, order, "accepted")
    assert len(await deliveries(client, order, phone)) == 2  # nothing planned for it any more
    assert fake.received(phone.subscription) == []


async def test_a_429_holds_back_every_push_to_that_service_until_retry_after(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe
) -> None:
    phone, laptop = await subscribe(), await subscribe()
    fake.fail_next(phone.subscription, throttled(2))
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await wait_for(lambda: not fake.failures[token_of(phone.subscription)], message="the 429")
    throttled_at = time.monotonic()

    async def waiting() -> bool:
        rows = await deliveries(client, order, phone)
        return bool(rows) and rows[0]["status"] == "retrying"

    await wait_for(waiting, message="the throttled push to be rescheduled")
    await change(client, order, "paid")
    [created, paid] = await pushes_about(fake, phone, order, 2)
    [_, laptop_paid] = await pushes_about(fake, laptop, order, 2)
    # Pushes to the same service wait too, not only the refused one.
    for push in (created, paid, laptop_paid):
        assert push.at - throttled_at >= 1.9
    rows = await settled(client, 2, order, phone)
    # Waiting out a 429 uses up none of the delivery's attempts: only the try that went through counts.
    assert (rows[0]["status"], rows[0]["attempts"]) == ("sent", 1)
    assert rows[0]["last_error"] == "http_429"


async def test_urgency_is_high_for_payment_failures_and_normal_for_the_order_going_on(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe
) -> None:
    phone = await subscribe()
    customer = await new_customer(client)
    failed = await new_order(client, customer["id"])
    await change(client, failed, "payment_failed")
    [_, failure] = await pushes_about(fake, phone, failed, 2)
    assert failure.title == f"Payment failed for #{failed['number']}"
    assert failure.urgency == "high"
    going_on = await new_order(client, customer["id"])
    for status in ("paid", "accepted"):
        await change(client, going_on, status)
    [_, _, accepted] = await pushes_about(fake, phone, going_on, 3)
    assert accepted.urgency == "normal"


async def test_5xx_is_retried_with_backoff(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe
) -> None:
    phone = await subscribe()
    fake.fail_next(phone.subscription, SERVER_ERROR, SERVER_ERROR)
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    [push] = await pushes_about(fake, phone, order, 1)
    assert push.title == f"New order #{order['number']}"
    [row] = await settled(client, 1, order, phone)
    assert (row["status"], row["attempts"]) == ("sent", 3)
    assert row["last_error"] == "http_500"


async def test_a_timeout_is_retried(client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe) -> None:
    phone = await subscribe()
    token = token_of(phone.subscription)
    fake.delays[token] = 5  # longer than the servers' push timeout (2 s)
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await wait_for(lambda: fake.arrivals[token], message="the first attempt")
    del fake.delays[token]
    [row] = await settled(client, 1, order, phone)
    assert (row["status"], row["attempts"]) == ("sent", 2)
    assert row["last_error"] == "timeout"


@pytest.mark.parametrize(("status", "code"), [(400, "bad_request"), (403, "forbidden"), (413, "payload_too_large")])
async def test_a_refused_push_fails_for_good_and_raises_an_alert(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe, status: int, code: str
) -> None:
    phone = await subscribe()
    fake.fail_next(phone.subscription, Failure(status, text="refused"))
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await change(client, order, "paid")
    refused, paid = await settled(client, 2, order, phone)
    assert (refused["status"], refused["attempts"]) == ("failed", 1)
    assert refused["last_error"] == f"http_{status}"
    assert paid["status"] == "sent"  # the queue moves on

    async def open_alert() -> dict[str, Any] | None:
        alerts = (await client.get("/api/v1/alerts", params={"resolved": "false"})).json()["items"]
        return next((alert for alert in alerts if alert["key"] == f"delivery:push:{code}"), None)

    alert = await wait_for(open_alert, message="the alert")
    assert alert["severity"] == "error"
    assert refused["id"] in alert["message"]
    notifications = (await client.get("/api/v1/notifications", params={"unread": "true"})).json()["items"]
    assert any(n["category"] == "alerts" and n["title"] == alert["title"] for n in notifications)
    # The admins' device hears of the alert too, with high urgency.
    [pushed] = [push for push in await fake.wait_pushes(phone.subscription, 2) if push.title == alert["title"]]
    assert pushed.urgency == "high"

    resolved = await client.post(f"/api/v1/alerts/{alert['id']}/resolve", json={"note": "fixed the key"})
    assert resolved.status_code == 200
    assert resolved.json()["resolution_note"] == "fixed the key"
    assert resolved.json()["resolved_at"] is not None
    again = await client.post(f"/api/v1/alerts/{alert['id']}/resolve")
    assert again.status_code == 409
    listed = (await client.get("/api/v1/alerts", params={"resolved": "true", "limit": 200})).json()["items"]
    assert alert["id"] in [item["id"] for item in listed]


async def test_preferences_switch_push_and_in_app_off_and_on(
    client: httpx.AsyncClient, fake: FakePushService, subscribe: Subscribe
) -> None:
    phone = await subscribe()
    customer = await new_customer(client)

    async def paid_order() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        order = await new_order(client, customer["id"])
        await change(client, order, "paid")
        await pushes_about(fake, phone, order, 1)  # order.created: orders are still on
        items = (await client.get("/api/v1/notifications", params={"limit": 10})).json()["items"]
        return order, [item for item in items if item["order_id"] == order["id"]]

    try:
        response = await client.put("/api/v1/me/preferences", json={"payments": {"push": False}})
        assert response.json()["payments"] == {"push": False, "in_app": True}
        order, notes = await paid_order()
        assert [n["category"] for n in notes] == ["payments", "orders"]
        events = (await client.get(f"/api/v1/orders/{order['id']}/events")).json()["items"]
        expected = [(events[0]["id"], "sent"), (events[1]["id"], "skipped")]

        async def recorded() -> list[dict[str, Any]] | None:
            # The push may have arrived a moment before its row is recorded as sent.
            rows = await deliveries(client, order, phone)
            return rows if [(row["event_id"], row["status"]) for row in rows] == expected else None

        # The payment's push is a row too, skipped: the deliveries list says why the phone heard nothing.
        rows = await wait_for(recorded, message="the order's push sent and the payment's skipped")
        assert rows[1]["last_error"] == "preferences"

        response = await client.put("/api/v1/me/preferences", json={"payments": {"push": True, "in_app": False}})
        assert response.json()["payments"] == {"push": True, "in_app": False}
        order, notes = await paid_order()
        [_, paid] = await pushes_about(fake, phone, order, 2)
        assert paid.title.startswith("Payment received")
        assert [n["category"] for n in notes] == ["orders"]

        response = await client.put("/api/v1/me/preferences", json={"payments": {"in_app": True}})
        assert response.json()["payments"] == {"push": True, "in_app": True}
        order, notes = await paid_order()
        await pushes_about(fake, phone, order, 2)
        assert [n["category"] for n in notes] == ["payments", "orders"]
    finally:
        everything_on = {
            category: {"push": True, "in_app": True} for category in ("orders", "payments", "alerts", "system")
        }
        assert (await client.put("/api/v1/me/preferences", json=everything_on)).json() == everything_on
