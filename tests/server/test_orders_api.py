"""Orders over HTTP, on both stacks: lifecycle, races, idempotency, money and pagination."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from decimal import Decimal

import httpx
import pytest

from ordercast.models.lifecycle import TRANSITIONS, OrderStatus
from tests.conftest import new_customer, new_order

# A path from pending_payment to each status, so every pair can be tried from a real order.
PATH_TO = {
    OrderStatus.PENDING_PAYMENT: [],
    OrderStatus.PAID: ["paid"],
    OrderStatus.PAYMENT_FAILED: ["payment_failed"],
    OrderStatus.EXPIRED: ["expired"],
    OrderStatus.ACCEPTED: ["paid", "accepted"],
    OrderStatus.PACKING: ["paid", "accepted", "packing"],
    OrderStatus.DISPATCHED: ["paid", "accepted", "packing", "dispatched"],
    OrderStatus.DELIVERED: ["paid", "accepted", "packing", "dispatched", "delivered"],
    OrderStatus.CANCELLED: ["cancelled"],
    OrderStatus.REFUNDED: ["paid", "refunded"],
}


async def order_in(client: httpx.AsyncClient, customer_id: str, status: OrderStatus) -> dict:
    order = await new_order(client, customer_id)
    for step in PATH_TO[status]:
        response = await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": step})
        assert response.status_code == 200, response.text
        order = response.json()
    assert order["status"] == status.value
    return order


async def test_create_order_computes_totals_and_starts_pending(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    items = [
        {"sku": "A", "name": "Apple", "quantity": 3, "unit_price": "0.10"},
        {"sku": "B", "name": "Bread", "quantity": 1, "unit_price": "2.5"},
    ]
    response = await client.post(
        "/api/v1/orders", json={"customer_id": customer["id"], "currency": "EUR", "items": items}
    )
    assert response.status_code == 201
    order = response.json()
    assert order["id"].startswith("ord_")
    assert len(order["number"]) == 8
    assert order["status"] == "pending_payment"
    assert order["total"] == "2.80"
    assert [i["total"] for i in order["items"]] == ["0.30", "2.50"]
    assert order["items"][1]["unit_price"] == "2.50"
    assert order["version"] == 1
    assert order["created_at"].endswith("Z")


def one_item_order(customer_id: str, currency: str, price: object) -> dict[str, object]:
    return {
        "customer_id": customer_id,
        "currency": currency,
        "items": [{"sku": "X", "name": "X", "quantity": 1, "unit_price": price}],
    }


@pytest.mark.parametrize(
    ("currency", "price", "expected"),
    [("JPY", "1200", "1200"), ("BHD", "1.005", "1.005"), ("EUR", "19.9", "19.90"), ("USD", "0", "0.00")],
)
async def test_money_round_trips_with_the_currencys_digits(
    client: httpx.AsyncClient, currency: str, price: str, expected: str
) -> None:
    body = one_item_order((await new_customer(client))["id"], currency, price)
    created = (await client.post("/api/v1/orders", json=body)).json()
    assert created["total"] == expected
    fetched = (await client.get(f"/api/v1/orders/{created['id']}")).json()
    assert fetched["total"] == expected
    assert fetched["items"][0]["unit_price"] == expected
    assert Decimal(fetched["total"]) == Decimal(price)


@pytest.mark.parametrize(
    ("currency", "price", "field"),
    [
        ("JPY", "1200.5", "items.0.unit_price"),
        ("EUR", "1.999", "items.0.unit_price"),
        ("EUR", 19.9, "items.0.unit_price"),
        ("XYZ", "1.00", "currency"),
        ("eur", "1.00", "currency"),
    ],
)
async def test_bad_money_is_422_naming_the_field(
    client: httpx.AsyncClient, currency: str, price: object, field: str
) -> None:
    body = one_item_order((await new_customer(client))["id"], currency, price)
    response = await client.post("/api/v1/orders", json=body)
    assert response.status_code == 422
    assert field in response.json()["error"]["details"]["fields"]


async def test_order_is_found_by_id_number_and_hash_number(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    for ref in (order["id"], order["number"], "%23" + order["number"], order["number"].lower()):
        response = await client.get(f"/api/v1/orders/{ref}")
        assert response.status_code == 200, ref
        assert response.json()["id"] == order["id"]


@pytest.mark.parametrize(("start", "to"), list(itertools.product(OrderStatus, OrderStatus)))
async def test_every_status_pair_is_allowed_or_invalid_transition(
    client: httpx.AsyncClient, start: OrderStatus, to: OrderStatus
) -> None:
    customer = await new_customer(client)
    order = await order_in(client, customer["id"], start)
    response = await client.post(
        f"/api/v1/orders/{order['id']}/status", json={"status": to.value, "tracking_number": "TRK1"}
    )
    if to in TRANSITIONS[start]:
        assert response.status_code == 200, response.text
        changed = response.json()
        assert changed["status"] == to.value
        assert changed["version"] == order["version"] + 1
    else:
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_transition"
        assert error["details"]["from"] == start.value
        assert error["details"]["to"] == to.value
        assert error["details"]["allowed"] == [s.value for s in TRANSITIONS[start]]


async def test_unknown_status_is_422(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    response = await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "teleported"})
    assert response.status_code == 422
    assert "status" in response.json()["error"]["details"]["fields"]


async def test_racing_status_changes_give_one_200_one_409_and_one_event(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    for _ in range(5):
        order = await new_order(client, customer["id"])
        url = f"/api/v1/orders/{order['id']}/status"
        responses = await asyncio.gather(
            client.post(url, json={"status": "paid"}), client.post(url, json={"status": "paid"})
        )
        assert sorted(r.status_code for r in responses) == [200, 409]
        events = (await client.get(f"/api/v1/orders/{order['id']}/events")).json()["items"]
        assert [e["type"] for e in events] == ["order.created", "order.status_changed"]


async def test_history_lists_events_oldest_first_with_versions(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await order_in(client, customer["id"], OrderStatus.PACKING)
    await client.patch(f"/api/v1/orders/{order['id']}", json={"note": "fragile"})
    events = (await client.get(f"/api/v1/orders/{order['number']}/events")).json()["items"]
    assert [e["type"] for e in events] == ["order.created"] + ["order.status_changed"] * 3 + ["order.updated"]
    assert [e["data"]["order"]["version"] for e in events] == [1, 2, 3, 4, 5]
    assert events[1]["data"]["from"] == "pending_payment"
    assert events[1]["data"]["to"] == "paid"
    assert events[-1]["data"]["changed"] == ["note"]
    assert all(e["id"].startswith("evt_") and e["occurred_at"].endswith("Z") for e in events)


async def test_patch_reports_changed_fields_and_no_change_makes_no_event(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    url = f"/api/v1/orders/{order['id']}"
    first = await client.patch(url, json={"tracking_number": "T1", "note": "hi"})
    assert first.status_code == 200
    assert first.json()["version"] == 2
    same = await client.patch(url, json={"tracking_number": "T1"})
    assert same.json()["version"] == 2
    events = (await client.get(f"{url}/events")).json()["items"]
    assert [e["type"] for e in events] == ["order.created", "order.updated"]
    assert events[1]["data"]["changed"] == ["note", "tracking_number"]


async def test_idempotency_key_replays_the_first_response(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    key = secrets.token_hex(8)
    body = {
        "customer_id": customer["id"],
        "currency": "EUR",
        "items": [{"sku": "A", "name": "A", "quantity": 1, "unit_price": "1.00"}],
    }
    first = await client.post("/api/v1/orders", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    reordered = dict(reversed(list(body.items())))
    again = await client.post("/api/v1/orders", json=reordered, headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post("/api/v1/orders", json={**body, "external_id": "x"}, headers={"Idempotency-Key": key})
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"


async def test_concurrent_requests_with_one_idempotency_key_make_one_order(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    key = secrets.token_hex(8)
    body = {
        "customer_id": customer["id"],
        "currency": "EUR",
        "items": [{"sku": "A", "name": "A", "quantity": 1, "unit_price": "1.00"}],
    }
    responses = await asyncio.gather(
        *(client.post("/api/v1/orders", json=body, headers={"Idempotency-Key": key}) for _ in range(8))
    )
    codes = [r.status_code for r in responses]
    assert set(codes) <= {201, 409}
    assert 201 in codes
    for response in responses:
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "idempotency_key_in_flight"
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1
    listed = (await client.get("/api/v1/orders", params={"customer_id": customer["id"]})).json()["items"]
    assert [o["id"] for o in listed] == list(ids)


async def test_failed_create_releases_the_idempotency_key(client: httpx.AsyncClient) -> None:
    key = secrets.token_hex(8)
    body = {
        "customer_id": "cus_missing",
        "currency": "EUR",
        "items": [{"sku": "A", "name": "A", "quantity": 1, "unit_price": "1"}],
    }
    first = await client.post("/api/v1/orders", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 422
    assert "customer_id" in first.json()["error"]["details"]["fields"]
    customer = await new_customer(client)
    fixed = await client.post(
        "/api/v1/orders", json={**body, "customer_id": customer["id"]}, headers={"Idempotency-Key": key}
    )
    assert fixed.status_code == 201


async def test_cursor_pagination_visits_every_order_once_newest_first(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    created = [(await new_order(client, customer["id"]))["id"] for _ in range(23)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"customer_id": customer["id"], "limit": 5}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/v1/orders", params=params)).json()
        seen.extend(o["id"] for o in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))


async def test_cursor_reused_with_other_filters_is_400(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    for _ in range(3):
        await new_order(client, customer["id"])
    page = (await client.get("/api/v1/orders", params={"customer_id": customer["id"], "limit": 1})).json()
    response = await client.get("/api/v1/orders", params={"status": "paid", "cursor": page["next_cursor"]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed"


async def test_filters_that_match_nothing_give_an_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/orders", params={"customer_id": "cus_nobody"})
    assert response.status_code == 200
    assert response.json()["items"] == []
    assert response.json()["next_cursor"] is None


@pytest.mark.parametrize(
    "params", [{"status": "lost"}, {"limit": "0"}, {"limit": "201"}, {"limit": "x"}, {"cursor": "!!"}]
)
async def test_bad_list_parameters_are_400(client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await client.get("/api/v1/orders", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed"


async def test_customers_are_created_once_per_external_id(client: httpx.AsyncClient) -> None:
    external_id = f"ext-{secrets.token_hex(6)}"
    first = await client.post("/api/v1/customers", json={"external_id": external_id, "name": "A", "locale": "de"})
    assert first.status_code == 201
    again = await client.post("/api/v1/customers", json={"external_id": external_id, "name": "A"})
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    fetched = (await client.get(f"/api/v1/customers/{first.json()['id']}")).json()
    assert fetched["locale"] == "de"
    assert fetched["telegram_linked"] is False
    assert fetched["id"].startswith("cus_")


async def test_unknown_customer_in_an_order_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/orders",
        json={
            "customer_id": "cus_nope",
            "currency": "EUR",
            "items": [{"sku": "A", "name": "A", "quantity": 1, "unit_price": "1"}],
        },
    )
    assert response.status_code == 422
    assert "customer_id" in response.json()["error"]["details"]["fields"]


async def test_reviews_list_is_empty_for_an_order_without_reviews(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    response = await client.get("/api/v1/reviews", params={"order_id": order["id"]})
    assert response.status_code == 200
    assert response.json() == {"items": []}
