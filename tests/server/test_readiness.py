"""/readyz: the database, the broker and every background loop of the process; 503 naming what is not."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.bot.fakebot import TOKEN
from tests.conftest import ServerProcess, Stack, free_port, wait_for

LOOPS = ("ordercast.realtime.hub", "ordercast.realtime.sweeper", "ordercast.notify.dispatcher")


async def test_a_ready_server_names_its_loops_alive(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert all(body["loops"][name] == "ok" for name in LOOPS), body["loops"]


async def test_a_loop_that_keeps_failing_makes_the_server_unready_and_is_named(tmp_path: Path) -> None:
    # The bot's start-up loop fails again and again: nothing answers at its Bot API address.
    server = ServerProcess(
        Stack("sqlite", f"sqlite://{tmp_path / 'ordercast.db'}", None),
        tmp_path / "server.log",
        telegram_token=TOKEN,
        telegram_mode="polling",
        telegram_api_url=f"http://127.0.0.1:{free_port()}",
        telegram_start_retry_cap=0.2,
    )
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=5) as client:

            async def unready() -> httpx.Response | None:
                assert server.process is not None
                assert server.process.poll() is None, server.output()
                try:
                    response = await client.get("/readyz")
                except httpx.HTTPError:
                    return None  # not listening yet
                return response if response.status_code == 503 else None

            response = await wait_for(unready, 30, "/readyz to answer 503")
        body = response.json()
        assert body["status"] == "unavailable"
        assert body["checks"] == {"database": "ok", "broker": "ok"}
        assert body["loops"]["ordercast.bot"].startswith("failing ("), body["loops"]
        assert all(body["loops"][name] == "ok" for name in LOOPS), body["loops"]
    finally:
        server.stop()
