"""The event streams of the whole app (SSE and WebSocket), on both stacks, against real servers."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from ordercast.events import Position
from tests.conftest import API_KEY, ServerProcess, new_customer, new_order, wait_for
from tests.server.test_auth_and_bad_input import logged_in
from tests.streams import sse, ws

AUTH = {"Authorization": f"Bearer {API_KEY}"}


def offsets(ids: list[str | None]) -> list[int]:
    positions = [Position.parse(i or "") for i in ids]
    assert all(p is not None for p in positions), ids
    return [p.offset for p in positions if p is not None]


async def test_sse_streams_order_events_with_contiguous_positions(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    async with sse(client) as stream:
        assert stream.response.status_code == 200
        assert stream.response.headers["content-type"].startswith("text/event-stream")
        assert stream.response.headers["cache-control"] == "no-store"
        assert stream.response.headers["x-accel-buffering"] == "no"
        await wait_for(lambda: stream.retry is not None, message="the retry field")
        assert stream.retry == 2000
        order = await new_order(client, customer["id"])
        await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})

        def mine() -> list:
            return [m for m in stream.of_type("order.") if m.data["data"]["order"]["id"] == order["id"]]

        await wait_for(lambda: len(mine()) == 2, message="two events of the order")
        created, paid = mine()
        assert created.type == "order.created"
        assert paid.type == "order.status_changed"
        assert paid.data["data"]["from"] == "pending_payment"
        assert paid.data["data"]["to"] == "paid"
        assert paid.data["id"].startswith("evt_")
        assert paid.data["occurred_at"].endswith("Z")
        all_offsets = offsets([m.id for m in stream.messages])
        assert all_offsets == list(range(all_offsets[0], all_offsets[0] + len(all_offsets)))


async def test_list_position_then_resume_misses_nothing(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    page = (await client.get("/api/v1/orders", params={"limit": 1})).json()
    position = page["position"]
    assert Position.parse(position) is not None
    order = await new_order(client, customer["id"])
    async with sse(client, last_event_id=position) as stream:
        await wait_for(
            lambda: any(m.data["data"]["order"]["id"] == order["id"] for m in stream.of_type("order.created")),
            message="the order created before connecting",
        )
        assert not stream.of_type("reset")


async def test_reconnect_with_last_event_id_replays_missed_events(client: httpx.AsyncClient) -> None:
    customer = await new_customer(client)
    order = await new_order(client, customer["id"])
    async with sse(client) as stream:
        await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": "paid"})
        await wait_for(lambda: stream.of_type("order.status_changed"), message="paid")
        last = stream.messages[-1].id
    for status in ("accepted", "packing"):
        await client.post(f"/api/v1/orders/{order['id']}/status", json={"status": status})
    async with sse(client, params={"last_event_id": last or ""}) as stream:

        def mine() -> list:
            changes = stream.of_type("order.status_changed")
            return [m for m in changes if m.data["data"]["order"]["id"] == order["id"]]

        await wait_for(lambda: len(mine()) == 2, message="the two missed changes")
        assert [m.data["data"]["to"] for m in mine()] == ["accepted", "packing"]
        assert offsets([m.id for m in stream.messages])[0] == offsets([last])[0] + 1


@pytest.mark.parametrize(
    ("make_id", "reason"),
    [
        (lambda p: "garbage", "invalid"),
        (lambda p: f"{p.epoch}:{p.offset + 1000}", "invalid"),
        (lambda p: f"another-epoch:{p.offset}", "epoch"),
    ],
)
async def test_bad_last_event_id_gets_reset_with_the_current_position(
    client: httpx.AsyncClient, make_id: object, reason: str
) -> None:
    current = Position.parse((await client.get("/api/v1/orders", params={"limit": 1})).json()["position"])
    assert current is not None
    async with sse(client, last_event_id=make_id(current)) as stream:  # type: ignore[operator]
        await wait_for(lambda: stream.messages, message="the reset")
        reset = stream.messages[0]
        assert reset.type == "reset"
        assert reset.data["reason"] == reason
        assert reset.id == reset.data["position"]
        assert Position.parse(reset.id or "") is not None


async def test_customer_streams_carry_only_their_orders(client: httpx.AsyncClient, server: ServerProcess) -> None:
    alice, bob = await new_customer(client), await new_customer(client)
    token = (await client.post(f"/api/v1/customers/{alice['id']}/stream-token", json={})).json()["token"]
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as anonymous,
        sse(anonymous, params={"token": token}) as alice_sse,
        ws(server.base_url, query=f"token={token}") as alice_ws,
        sse(client) as admin_sse,
    ):
        assert alice_sse.response.status_code == 200
        bob_order = await new_order(client, bob["id"])
        alice_order = await new_order(client, alice["id"])
        for reader in (alice_sse, alice_ws):
            await wait_for(lambda r=reader: r.of_type("order.created"), message="alice's order")
        await wait_for(
            lambda: (
                {m.data["data"]["order"]["id"] for m in admin_sse.of_type("order.created")}
                >= {bob_order["id"], alice_order["id"]}
            ),
            message="both orders on the admin stream",
        )
        for reader in (alice_sse, alice_ws):
            seen = {m.data["data"]["order"]["customer_id"] for m in reader.of_type("order.")}
            assert seen == {alice["id"]}
            assert offsets([m.id for m in reader.messages]) == [1]


async def test_websocket_sends_the_same_messages_as_json_frames(
    client: httpx.AsyncClient, server: ServerProcess
) -> None:
    customer = await new_customer(client)
    async with ws(server.base_url, headers=AUTH) as stream:
        order = await new_order(client, customer["id"])
        await wait_for(
            lambda: any(m.data["data"]["order"]["id"] == order["id"] for m in stream.of_type("order.created")),
            message="the order over WebSocket",
        )
        message = stream.of_type("order.created")[-1]
        assert Position.parse(message.id or "") is not None
        assert message.data["type"] == "order.created"


async def test_websocket_upgrade_is_refused_without_credentials_or_with_a_foreign_origin(server: ServerProcess) -> None:
    with pytest.raises(InvalidStatus) as missing:
        async with ws(server.base_url):
            pass
    assert missing.value.response.status_code == 401
    async with logged_in(server) as browser:
        cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies.jar)
    with pytest.raises(InvalidStatus) as foreign:
        async with ws(server.base_url, headers={"Cookie": cookie, "Origin": "https://evil.example"}):
            pass
    assert foreign.value.response.status_code == 403
    async with ws(server.base_url, headers={"Cookie": cookie, "Origin": server.base_url}) as stream:
        assert stream.connection.state.name == "OPEN"


async def test_sse_sends_pings(client: httpx.AsyncClient, server: ServerProcess) -> None:
    # A new customer's channel is quiet (a ping is due only after a whole interval without a write;
    # the shared server's admin channel may carry other tests' leftovers).
    customer = await new_customer(client)
    token = (await client.post(f"/api/v1/customers/{customer['id']}/stream-token")).json()["token"]
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}) as reader,
        sse(reader) as stream,
    ):
        await wait_for(lambda: "ping" in stream.comments, timeout=5, message="a ping comment")


async def test_sigterm_ends_streams_and_exits_within_ten_seconds(start_server: object) -> None:
    server: ServerProcess = await start_server()  # type: ignore[operator]
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers=AUTH, timeout=10) as client,
        sse(client) as stream,
        ws(server.base_url, headers=AUTH) as socket,
    ):
        await wait_for(lambda: stream.retry is not None, message="the stream to open")
        started = time.monotonic()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(stream.ended.wait(), 10)
        await asyncio.wait_for(socket.closed.wait(), 10)
        code = await asyncio.to_thread(server.process.wait, 10)
        assert time.monotonic() - started < 10
        # uvicorn re-raises the signal after a graceful shutdown, so the exit status names it.
        assert code in (0, -signal.SIGTERM)
        assert "Application shutdown complete" in server.output()
