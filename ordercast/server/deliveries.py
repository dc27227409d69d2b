"""Deliveries over HTTP (`/api/v1/deliveries`, `/stats`), and the wiring that wakes the senders on events."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Self

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordercast.errors import Malformed
from ordercast.events import ADMIN_CHANNEL
from ordercast.models import DeliveryStatus
from ordercast.notify import planning
from ordercast.realtime.backoff import backoff
from ordercast.realtime.hub import Hub
from ordercast.server.http import JSON
from ordercast.server.pagination import decode_cursor, encode_cursor, parse_limit
from ordercast.server.runtime import runtime
from ordercast.services import deliveries

logger = logging.getLogger("ordercast.notify")


async def list_deliveries(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    query = request.query_params
    status_text = query.get("status")
    if status_text is not None and status_text not in DeliveryStatus._value2member_map_:
        raise Malformed(f"unknown status {status_text!r}", details={"parameter": "status"})
    channel = query.get("channel")
    order_id = query.get("order_id")
    limit = parse_limit(query)
    filters = {"order_id": order_id, "channel": channel, "status": status_text}
    cursor = query.get("cursor")
    before = int(decode_cursor(cursor, filters, prefix="seq")) if cursor else None
    rows = await deliveries.page(
        order_id=order_id,
        channel=channel,
        status=DeliveryStatus(status_text) if status_text else None,
        limit=limit,
        before_seq=before,
    )
    page, more = rows[:limit], len(rows) > limit
    return JSON(
        {
            "items": [row.as_json() for row in page],
            "next_cursor": encode_cursor(str(page[-1].seq), filters) if more else None,
        }
    )


async def delivery_stats(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    stats = await deliveries.stats()
    return JSON({channel: figures.as_json() for channel, figures in stats.items()})


routes = [
    Route("/api/v1/deliveries", list_deliveries, methods=["GET"]),
    Route("/api/v1/deliveries/stats", delivery_stats, methods=["GET"]),
]


def causes_deliveries(event_type: str, data: dict[str, object]) -> bool:
    """Whether an event may have queued deliveries (so the senders should look)."""
    return planning.wants_customer_chat(event_type, data) or planning.notifies_admins(event_type, data)


class EventWakeups:
    """Wakes the senders of this process for every event that may have queued deliveries, whichever
    process committed it: the hub's `admin` channel carries every event."""

    def __init__(self, hub: Hub, wake: Callable[[], None]) -> None:
        self._hub = hub
        self._wake = wake
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._listen(), name="ordercast.notify.wakeups")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _listen(self) -> None:
        failures = 0
        while True:
            try:
                async with self._hub.subscribe(ADMIN_CHANNEL) as subscription:
                    failures = 0
                    while not subscription.closed:
                        batch = await subscription.next_batch()
                        if any(
                            message.event is not None and causes_deliveries(message.event.type, message.event.data)
                            for message in batch
                        ):
                            self._wake()
                    # Closed (too slow, broker gone, shutting down): we may have missed events, so
                    # look once; the claim timer covers the rest.
                    self._wake()
            except Exception:
                logger.debug("the senders' event subscription failed; subscribing again", exc_info=True)
            failures += 1
            await asyncio.sleep(backoff(failures, base=0.1, cap=5.0))
