"""Credentials, the Origin check, the login form, and every kind of bad input → its documented 4xx."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from tests.conftest import ADMIN_EMAIL, ADMIN_PASSWORD, API_KEY, ServerProcess, new_customer, new_order, wait_for
from tests.streams import sse


@contextlib.asynccontextmanager
async def logged_in(server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client signed in as the test admin."""
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as client:
        response = await client.post("/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "/"})
        assert response.status_code == 303, response.text
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/orders"),
        ("POST", "/api/v1/orders"),
        ("GET", "/api/v1/orders/ord_x"),
        ("POST", "/api/v1/customers"),
        ("GET", "/metrics"),
        ("GET", "/api/v1/openapi.json"),
        ("GET", "/api/v1/reviews"),
    ],
)
async def test_routes_need_credentials(anonymous: httpx.AsyncClient, method: str, path: str) -> None:
    response = await anonymous.request(method, path, json={})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthenticated"


async def test_public_routes_answer_without_credentials(anonymous: httpx.AsyncClient) -> None:
    assert (await anonymous.get("/healthz")).status_code == 200
    assert (await anonymous.get("/readyz")).json()["checks"] == {"database": "ok", "broker": "ok"}
    assert (await anonymous.get("/login")).status_code == 200
    assert (await anonymous.get("/static/style.css")).status_code == 200
    root = await anonymous.get("/")
    assert root.status_code == 303
    assert root.headers["location"].startswith("/login")


@pytest.mark.parametrize("header", ["Bearer ock_wrong", "Bearer", "Basic abc", "Bearer oct_forged.token"])
async def test_bad_credentials_are_401(anonymous: httpx.AsyncClient, header: str) -> None:
    response = await anonymous.get("/api/v1/orders", headers={"Authorization": header})
    assert response.status_code == 401


async def test_created_api_key_works_and_env_key_acts_as_service_admin(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/orders", params={"limit": 1})
    assert response.status_code == 200


async def test_login_sets_a_session_cookie_that_reads_the_api(server: ServerProcess) -> None:
    async with logged_in(server) as browser:
        cookie = next(c for c in browser.cookies.jar if c.name == "ordercast_session")
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert (await browser.get("/api/v1/orders", params={"limit": 1})).status_code == 200
        page = await browser.get("/")
        assert page.status_code == 200
        assert "Orders" in page.text


async def test_cookie_post_without_our_origin_is_403_csrf(server: ServerProcess) -> None:
    async with logged_in(server) as browser:
        body = {"external_id": f"ext-{secrets.token_hex(4)}", "name": "X"}
        foreign = await browser.post("/api/v1/customers", json=body, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert foreign.json()["error"]["code"] == "csrf"
        missing = await browser.post("/api/v1/customers", json=body)
        assert missing.status_code == 403
        ours = await browser.post("/api/v1/customers", json=body, headers={"Origin": server.base_url})
        assert ours.status_code == 201


async def test_wrong_password_is_401_with_the_form_and_then_rate_limited(server: ServerProcess) -> None:
    email = f"nobody-{secrets.token_hex(4)}@example.com"
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as browser:
        for _ in range(10):
            response = await browser.post("/login", data={"email": email, "password": "wrong"})
            assert response.status_code == 401
            assert "<form" in response.text
        limited = await browser.post("/login", data={"email": email, "password": "wrong"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) > 0


async def test_login_from_a_foreign_origin_is_403(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post(
        "/login",
        data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403


async def test_login_next_is_never_an_open_redirect(server: ServerProcess) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as browser:
        response = await browser.post(
            "/login", data={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "next": "//evil.example/x"}
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed"),
        (b"[1, 2]", 400, "malformed"),
        (b"", 400, "malformed"),
        (b'{"customer_id": 5, "currency": "EUR", "items": []}', 422, "invalid"),
        (
            b'{"currency": "EUR", "items": [{"sku": "a", "name": "a", "quantity": 1, "unit_price": "1"}]}',
            422,
            "invalid",
        ),
    ],
)
async def test_malformed_and_invalid_bodies(client: httpx.AsyncClient, body: bytes, status: int, code: str) -> None:
    response = await client.post("/api/v1/orders", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_invalid_fields_are_named_by_dotted_path(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    body = {
        "customer_id": customer["id"],
        "currency": "EUR",
        "items": [{"sku": "a", "name": "a", "quantity": 0, "unit_price": "1", "colour": "red"}],
        "gift": True,
    }
    response = await client.post("/api/v1/orders", json=body)
    assert response.status_code == 422
    fields = response.json()["error"]["details"]["fields"]
    assert set(fields) == {"items.0.quantity", "items.0.colour", "gift"}
    assert fields["gift"] == "unknown field"


@pytest.mark.parametrize("quantity", [True, "2", 2.0, 10_001])
async def test_wrong_typed_quantities_are_422(client: httpx.AsyncClient, quantity: object) -> None:
    customer = await new_customer(client)
    body = {
        "customer_id": customer["id"],
        "currency": "EUR",
        "items": [{"sku": "a", "name": "a", "quantity": quantity, "unit_price": "1"}],
    }
    response = await client.post("/api/v1/orders", json=body)
    assert response.status_code == 422
    assert "items.0.quantity" in response.json()["error"]["details"]["fields"]


async def test_oversize_body_with_content_length_is_413_before_it_is_read(server: ServerProcess) -> None:
    # Raw socket: the server answers from the headers alone, so the client needn't send the body
    # (an HTTP client still writing 1 MiB would race the server closing the connection).
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"POST /api/v1/orders HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {API_KEY}\r\nContent-Length: 1048577\r\n\r\n".encode()
        + b"{"
    )
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)  # until EOF: the server closes after a 413
    writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert orjson.loads(body)["error"]["code"] == "too_large"


async def test_oversize_streamed_body_without_content_length_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(17):  # just past the 1 MiB limit, so the whole body is sent before the answer
            yield b" " * 65_536

    response = await client.post("/api/v1/orders", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_unknown_ids_are_404(client: httpx.AsyncClient) -> None:
    for path in (
        "/api/v1/orders/ord_nope",
        "/api/v1/orders/ZZZZZZZZ",
        "/api/v1/orders/not-a-ref",
        "/api/v1/customers/cus_nope",
    ):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "not_found"
    status = await client.post("/api/v1/orders/ord_nope/status", json={"status": "paid"})
    assert status.status_code == 404


async def test_unknown_route_is_404_and_wrong_method_is_405(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/nothing")).json()["error"]["code"] == "not_found"
    response = await client.delete("/api/v1/orders")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


async def test_customer_token_reads_only_its_own_orders(client: httpx.AsyncClient, server: ServerProcess) -> None:
    alice = await new_customer(client)
    bob = await new_customer(client)
    alice_order = await new_order(client, alice["id"])
    bob_order = await new_order(client, bob["id"])
    issued = await client.post(f"/api/v1/customers/{alice['id']}/stream-token", json={"ttl_seconds": 60})
    assert issued.status_code == 201
    token = issued.json()["token"]
    assert token.startswith("oct_")
    auth = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=auth, timeout=10) as customer:
        listed = (await customer.get("/api/v1/orders")).json()["items"]
        assert [o["id"] for o in listed] == [alice_order["id"]]
        foreign_filter = (await customer.get("/api/v1/orders", params={"customer_id": bob["id"]})).json()
        assert foreign_filter["items"] == []
        assert (await customer.get(f"/api/v1/orders/{alice_order['number']}")).status_code == 200
        assert (await customer.get(f"/api/v1/orders/{bob_order['id']}")).status_code == 404
        for method, path in [
            ("POST", f"/api/v1/orders/{alice_order['id']}/status"),
            ("GET", f"/api/v1/customers/{alice['id']}"),
            ("GET", f"/api/v1/orders/{alice_order['id']}/events"),
            ("GET", "/metrics"),
        ]:
            response = await customer.request(method, path, json={"status": "cancelled"})
            assert response.status_code == 403, path
    async with httpx.AsyncClient(base_url=server.base_url) as browser:
        query_token = await browser.get("/api/v1/orders", params={"token": token})
    assert query_token.status_code == 200
    assert token not in server.output()


@pytest.mark.parametrize("ttl", [0, 30 * 86_400 + 1, "60"])
async def test_stream_token_ttl_outside_bounds_is_422(client: httpx.AsyncClient, ttl: object) -> None:
    customer = await new_customer(client)
    response = await client.post(f"/api/v1/customers/{customer['id']}/stream-token", json={"ttl_seconds": ttl})
    assert response.status_code == 422


@pytest.mark.parametrize("body", [None, b"", b"{}"])
async def test_stream_token_body_is_optional(client: httpx.AsyncClient, body: bytes | None) -> None:
    customer = await new_customer(client)
    response = await client.post(f"/api/v1/customers/{customer['id']}/stream-token", content=body)
    assert response.status_code == 201, response.text
    assert response.json()["token"].startswith("oct_")


async def test_telegram_link_with_the_bot_off_is_409(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    response = await client.post(f"/api/v1/customers/{customer['id']}/telegram-link")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "telegram_off"


async def test_metrics_count_requests_and_status_changes(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
    text = (await client.get("/metrics")).text
    assert 'ordercast_http_requests_total{method="POST",route="/api/v1/orders",status="201"}' in text
    assert 'ordercast_order_status_changes_total{status="paid"}' in text


async def test_nul_characters_are_422_not_a_database_error(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/customers", json={"external_id": "a\u0000b", "name": "N"})
    assert response.status_code == 422
    assert "external_id" in response.json()["error"]["details"]["fields"]
    assert (await client.get("/api/v1/orders", params={"customer_id": "cus_\u0000"})).json()["items"] == []
    assert (await client.get("/api/v1/orders/ord_%00")).status_code == 404


async def test_an_order_total_beyond_the_column_is_422(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    item = {"sku": "a", "name": "a", "quantity": 10_000, "unit_price": "9999999999999999"}
    response = await client.post(
        "/api/v1/orders", json={"customer_id": customer["id"], "currency": "EUR", "items": [item]}
    )
    assert response.status_code == 422
    assert "items" in response.json()["error"]["details"]["fields"]


async def test_the_shops_note_never_reaches_the_customer(client: httpx.AsyncClient, server: ServerProcess) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    token = (await client.post(f"/api/v1/customers/{customer['id']}/stream-token")).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers=auth, timeout=10) as reader,
        sse(reader) as stream,
        sse(client) as admin_stream,
    ):
        await wait_for(lambda: stream.comments or stream.messages, message="the customer's stream to open")
        noted = await client.patch(f"/api/v1/orders/{order['id']}", json={"note": "customer was rude, check address"})
        assert noted.json()["note"] == "customer was rude, check address"  # the shop sees it
        await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
        await wait_for(lambda: stream.of_type("order.status_changed"), message="the status change, for the customer")
        await wait_for(lambda: admin_stream.of_type("order.status_changed"), message="the status change, for admins")
        # The change of the note alone reached the admins, and nothing of it the customer.
        assert [m.data["data"]["changed"] for m in admin_stream.of_type("order.updated")] == [["note"]]
        assert stream.of_type("order.updated") == []
        assert "rude" not in str([m.data for m in stream.messages])
        assert "note" not in stream.of_type("order.status_changed")[0].data["data"]["order"]
        assert "note" not in (await reader.get(f"/api/v1/orders/{order['id']}")).json()
        assert all("note" not in item for item in (await reader.get("/api/v1/orders")).json()["items"])


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"channel": "x" * 10_000}, "channel"),
        ({"channel": "carrier-pigeon"}, "channel"),
        ({"order_id": "o" * 5_000}, "order_id"),
        ({"order_id": "cus_not_an_order"}, "order_id"),
    ],
)
async def test_a_bad_deliveries_filter_is_400_naming_it(
    client: httpx.AsyncClient, params: dict[str, str], parameter: str
) -> None:
    response = await client.get("/api/v1/deliveries", params=params)
    assert response.status_code == 400
    assert response.json()["error"]["details"]["parameter"] == parameter
