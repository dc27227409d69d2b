"""Payment webhooks on both stacks: every outcome of API.md's list, signed as a provider would sign."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest

from ordercast.server.signatures import StandardWebhooks, StripeSignatures
from tests.conftest import (
    API_KEY,
    OLD_PAYMENT_SECRET,
    PAYMENT_SECRET,
    STRIPE_SECRET,
    ServerProcess,
    new_customer,
    new_order,
    wait_for,
)
from tests.streams import sse

URL = "/api/v1/webhooks/payments"


def signed(
    body: Any,
    *,
    secret: str = PAYMENT_SECRET,
    webhook_id: str | None = None,
    timestamp: int | None = None,
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    webhook_id = webhook_id or f"msg_{secrets.token_hex(8)}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": StandardWebhooks.sign(secret, webhook_id, timestamp, raw),
        "content-type": "application/json",
    }
    return raw, headers


def notice(order: dict[str, Any], kind: str = "payment.succeeded", **data: Any) -> dict[str, Any]:
    fields = {
        "order_id": order["id"],
        "amount": order["total"],
        "currency": order["currency"],
        "payment_id": f"pay_{secrets.token_hex(6)}",
    }
    return {"type": kind, "data": {**fields, **data}}


async def deliver(client: httpx.AsyncClient, body: Any, **sign: Any) -> httpx.Response:
    raw, headers = signed(body, **sign)
    return await client.post(URL, content=raw, headers=headers)


async def events_of(client: httpx.AsyncClient, order: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/orders/{order['id']}/events")
    return response.json()["items"]  # type: ignore[no-any-return]


async def test_a_valid_payment_moves_the_order_and_the_event_names_the_payment(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    body = notice(order)
    response = await deliver(anonymous, body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "applied"
    assert response.json()["order"]["status"] == "paid"
    events = await events_of(client, order)
    assert events[-1]["type"] == "order.status_changed"
    assert events[-1]["data"]["to"] == "paid"
    assert events[-1]["data"]["payment_id"] == body["data"]["payment_id"]


async def test_payment_failed_and_expired_by_order_number(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    failed = notice(order, "payment.failed")
    del failed["data"]["order_id"]
    failed["data"]["order_number"] = order["number"]
    assert (await deliver(anonymous, failed)).json()["order"]["status"] == "payment_failed"
    expired = notice(order, "payment.expired")
    assert (await deliver(anonymous, expired)).json()["order"]["status"] == "expired"


async def test_the_old_secret_still_verifies_during_a_rotation(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    response = await deliver(anonymous, notice(order), secret=OLD_PAYMENT_SECRET)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        lambda raw, h: (raw, {**h, "webhook-signature": "v1," + "A" * 44}),
        lambda raw, h: (raw, {k: v for k, v in h.items() if k != "webhook-signature"}),
        lambda raw, h: (raw, {k: v for k, v in h.items() if k != "webhook-id"}),
        lambda raw, h: (raw + b" ", h),
        lambda raw, h: (raw, {**h, "webhook-signature": "v1,%%%"}),
    ],
)
async def test_bad_or_missing_signatures_are_401(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, tamper: Callable[..., Any]
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    raw, headers = tamper(*signed(notice(order)))
    response = await anonymous.post(URL, content=raw, headers=headers)
    assert response.status_code == 401
    assert (await client.get(f"/api/v1/orders/{order['id']}")).json()["status"] == "pending_payment"


@pytest.mark.parametrize("skew", [-301, 301])
async def test_a_stale_or_future_timestamp_is_401(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient, skew: int
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    response = await deliver(anonymous, notice(order), timestamp=int(time.time()) + skew)
    assert response.status_code == 401


async def test_a_secret_rotated_out_is_401(client: httpx.AsyncClient, anonymous: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    gone = "whsec_" + "Z29uZS1zZWNyZXQtZ29uZS1zZWNyZXQ="
    assert (await deliver(anonymous, notice(order), secret=gone)).status_code == 401


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"{not json", 400),
        (b"[]", 400),
        ({"type": "payment.refunded", "data": {}}, 422),
        ({"type": "payment.succeeded"}, 422),
        ({"type": "payment.succeeded", "data": {"amount": "1.00", "currency": "EUR", "payment_id": "p"}}, 422),
        (
            {
                "type": "payment.succeeded",
                "data": {
                    "order_id": "ord_x",
                    "order_number": "AAAA",
                    "amount": 1,
                    "currency": "EUR",
                    "payment_id": "p",
                },
            },
            422,
        ),
    ],
)
async def test_malformed_notices_are_400_or_422(anonymous: httpx.AsyncClient, body: Any, status: int) -> None:
    response = await deliver(anonymous, body)
    assert response.status_code == status, response.text


async def test_an_unknown_order_is_404_and_not_remembered(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    webhook_id = f"msg_{secrets.token_hex(8)}"
    missing = {
        "type": "payment.succeeded",
        "data": {"order_number": "ZZZZZZZZ", "amount": "9.90", "currency": "EUR", "payment_id": "pay_early"},
    }
    assert (await deliver(anonymous, missing, webhook_id=webhook_id)).status_code == 404
    # The provider retries the same webhook id once the order exists; a 404 was not remembered.
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    retried = await deliver(anonymous, notice(order, payment_id="pay_early"), webhook_id=webhook_id)
    assert retried.status_code == 200
    assert retried.json()["status"] == "applied"


async def test_a_repeated_webhook_id_or_payment_id_has_no_second_effect(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    body = notice(order)
    webhook_id = f"msg_{secrets.token_hex(8)}"
    first = await deliver(anonymous, body, webhook_id=webhook_id)
    assert first.json()["status"] == "applied"
    again = await deliver(anonymous, body, webhook_id=webhook_id)
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    same_payment = await deliver(anonymous, body)  # a new webhook id, the same payment
    assert same_payment.status_code == 200
    assert same_payment.json()["status"] == "duplicate"
    assert [e["type"] for e in await events_of(client, order)] == ["order.created", "order.status_changed"]


async def test_an_amount_mismatch_is_409_with_one_alert_and_no_transition(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    key = f"payment:amount:{order['number']}"
    async with sse(client) as stream:
        for currency, amount in (("EUR", "0.01"), ("USD", order["total"])):
            response = await deliver(anonymous, notice(order, amount=amount, currency=currency))
            assert response.status_code == 409
            assert response.json()["error"]["details"]["reason"] == "amount"
        assert (await client.get(f"/api/v1/orders/{order['id']}")).json()["status"] == "pending_payment"
        alerts = (await client.get("/api/v1/alerts", params={"resolved": "false"})).json()["items"]
        mine = [a for a in alerts if a["key"] == key]
        assert len(mine) == 1
        assert mine[0]["occurrences"] == 2
        # Every raise and the resolution reach open dashboards as events.
        resolved = await client.post(f"/api/v1/alerts/{mine[0]['id']}/resolve", json={"note": "refunded by hand"})
        assert resolved.status_code == 200, resolved.text

        def alert_events() -> list[tuple[str, int, str | None]]:
            return [
                (m.data["type"], m.data["data"]["alert"]["occurrences"], m.data["data"]["alert"]["resolution_note"])
                for m in stream.of_type("alert.")
                if m.data["data"]["alert"]["key"] == key
            ]

        await wait_for(lambda: len(alert_events()) == 3, message="two alert.raised and one alert.resolved")
        assert alert_events() == [
            ("alert.raised", 1, None),
            ("alert.raised", 2, None),
            ("alert.resolved", 2, "refunded by hand"),
        ]


async def test_a_payment_for_a_cancelled_order_is_409_and_asks_for_a_refund(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "cancelled"})
    response = await deliver(anonymous, notice(order))
    assert response.status_code == 409
    alerts = (await client.get("/api/v1/alerts", params={"resolved": "false"})).json()["items"]
    mine = [a for a in alerts if a["key"] == f"payment:unexpected:{order['number']}"]
    assert len(mine) == 1
    assert "refund" in mine[0]["title"]


async def test_a_failure_notice_for_an_order_paid_since_is_ignored(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await deliver(anonymous, notice(order))
    stale = await deliver(anonymous, notice(order, "payment.failed"))
    assert stale.status_code == 200
    assert stale.json()["status"] == "ignored"
    assert (await client.get(f"/api/v1/orders/{order['id']}")).json()["status"] == "paid"


async def test_a_16_mib_body_is_413(server: ServerProcess) -> None:
    # Raw socket: the server answers from the headers, before the client has sent 16 MiB.
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        f"POST {URL} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n".encode()
        + f"Content-Length: {16 * 1024 * 1024}\r\nwebhook-id: m\r\n\r\n{{".encode()
    )
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    assert response.startswith(b"HTTP/1.1 413")


async def test_stripe_signed_payment_intent_events_move_the_order(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    minor = int(order["total"].replace(".", ""))
    event = {
        "id": f"evt_{secrets.token_hex(8)}",
        "object": "event",
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": "pi_123",
                "object": "payment_intent",
                "amount_received": minor,
                "currency": "eur",
                "metadata": {"order_id": order["id"]},
            }
        },
    }
    raw = orjson.dumps(event)
    header = StripeSignatures.sign(STRIPE_SECRET, int(time.time()), raw)
    response = await anonymous.post(URL, content=raw, headers={"Stripe-Signature": header})
    assert response.status_code == 200, response.text
    assert response.json()["order"]["status"] == "paid"
    bad = await anonymous.post(URL, content=raw, headers={"Stripe-Signature": header.replace("v1=", "v1=0")})
    assert bad.status_code == 401


async def test_two_processes_receiving_the_same_webhook_at_once_make_one_transition(
    start_pg_server: Callable[..., Any],
) -> None:
    a: ServerProcess = await start_pg_server()
    b: ServerProcess = await start_pg_server()
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        httpx.AsyncClient(base_url=a.base_url, headers=auth, timeout=10) as on_a,
        httpx.AsyncClient(base_url=b.base_url, timeout=10) as on_b,
    ):
        customer = await new_customer(on_a)
        for _ in range(5):
            order = await new_order(on_a, customer["id"])
            raw, headers = signed(notice(order))
            responses = await asyncio.gather(
                on_a.post(URL, content=raw, headers=headers), on_b.post(URL, content=raw, headers=headers)
            )
            assert [r.status_code for r in responses] == [200, 200]
            assert sorted(r.json()["status"] for r in responses) == ["applied", "duplicate"]
            assert [e["type"] for e in await events_of(on_a, order)] == ["order.created", "order.status_changed"]


async def test_a_payment_tells_the_admins_in_their_notification_centre(
    client: httpx.AsyncClient, anonymous: httpx.AsyncClient
) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    assert (await deliver(anonymous, notice(order))).status_code == 200
    items = (await client.get("/api/v1/notifications", params={"limit": 200})).json()["items"]
    about = [n for n in items if n["order_id"] == order["id"] and n["category"] == "payments"]
    assert about, items[:3]
    assert order["number"] in about[0]["title"] + about[0]["body"]
