"""Deliveries over HTTP: `/api/v1/deliveries` and `/api/v1/deliveries/stats`."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from ordercast.errors import Malformed
from ordercast.ids import is_id
from ordercast.models import DeliveryStatus
from ordercast.notify import planning
from ordercast.server.http import JSON
from ordercast.server.openapi import PAGE, ApiRoute, Operation, choices, in_query
from ordercast.server.pagination import decode_cursor, encode_cursor, parse_limit
from ordercast.server.runtime import runtime
from ordercast.services import deliveries, schemas

logger = logging.getLogger("ordercast.notify")


async def list_deliveries(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    query = request.query_params
    status_text = query.get("status")
    if status_text is not None and status_text not in DeliveryStatus._value2member_map_:
        raise Malformed(f"unknown status {status_text!r}", details={"parameter": "status"})
    channel = query.get("channel")
    if channel is not None and channel not in planning.CHANNELS:
        raise Malformed(f"unknown channel {channel[:40]!r}", details={"parameter": "channel"})
    order_id = query.get("order_id")
    if order_id is not None and not is_id(order_id, "ord"):
        raise Malformed("order_id is not an order id", details={"parameter": "order_id"})
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
    ApiRoute(
        "GET",
        "/api/v1/deliveries",
        list_deliveries,
        Operation(
            "Deliveries (outbound messages), newest first",
            ok=schemas.DeliveryPage,
            params=[
                in_query("order_id", {"type": "string", "pattern": "^ord_[0-9a-hjkmnp-tv-z]{26}$"}),
                in_query("channel", {"type": "string", "enum": list(planning.CHANNELS)}),
                in_query("status", choices(DeliveryStatus)),
                *PAGE,
            ],
        ),
    ),
    ApiRoute(
        "GET",
        "/api/v1/deliveries/stats",
        delivery_stats,
        Operation("Delivery counts and send latency per channel", ok=schemas.DeliveryStats),
    ),
]
