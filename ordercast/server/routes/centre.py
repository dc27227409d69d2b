"""The notification centre, alerts and preferences over HTTP."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordercast.server.http import JSON, read_model
from ordercast.server.pagination import decode_cursor, encode_cursor, parse_bool, parse_limit
from ordercast.server.runtime import Runtime, runtime
from ordercast.services import alerts, notifications
from ordercast.services.schemas import AlertResolution, PreferencesUpdate

logger = logging.getLogger("ordercast.notifications")


async def _admin(request: Request) -> tuple[Runtime, str]:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    return rt, principal.user_id


async def list_notifications(request: Request) -> Response:
    _, user_id = await _admin(request)
    unread = parse_bool(request.query_params, "unread")
    limit = parse_limit(request.query_params)
    filters = {"unread": None if unread is None else str(unread).lower()}
    cursor = request.query_params.get("cursor")
    before = decode_cursor(cursor, filters, prefix="ntf") if cursor else None
    rows = await notifications.page(user_id=user_id, unread=unread, limit=limit, before_id=before)
    page, more = rows[:limit], len(rows) > limit
    return JSON(
        {
            "items": [row.as_json() for row in page],
            "next_cursor": encode_cursor(page[-1].id, filters) if more else None,
        }
    )


async def unread_count(request: Request) -> Response:
    _, user_id = await _admin(request)
    return JSON({"count": await notifications.unread_count(user_id)})


async def read_one(request: Request) -> Response:
    rt, user_id = await _admin(request)
    notification = await notifications.read(user_id, request.path_params["notification_id"], publish=rt.publish)
    return JSON(notification.as_json())


async def read_all(request: Request) -> Response:
    rt, user_id = await _admin(request)
    return JSON({"count": await notifications.read_all(user_id, publish=rt.publish)})


async def delete_one(request: Request) -> Response:
    rt, user_id = await _admin(request)
    await notifications.delete(user_id, request.path_params["notification_id"], publish=rt.publish)
    return Response(status_code=204)


async def list_alerts(request: Request) -> Response:
    await _admin(request)
    resolved = parse_bool(request.query_params, "resolved")
    limit = parse_limit(request.query_params)
    filters = {"resolved": None if resolved is None else str(resolved).lower()}
    cursor = request.query_params.get("cursor")
    before = decode_cursor(cursor, filters, prefix="alr") if cursor else None
    rows = await alerts.page(resolved=resolved, limit=limit, before_id=before)
    page, more = rows[:limit], len(rows) > limit
    return JSON(
        {
            "items": [row.as_json() for row in page],
            "next_cursor": encode_cursor(page[-1].id, filters) if more else None,
        }
    )


async def resolve_alert(request: Request) -> Response:
    rt, _ = await _admin(request)
    body = await read_model(request, AlertResolution, optional=True)
    alert = await alerts.resolve_alert(request.path_params["alert_id"], note=body.note, publish=rt.publish)
    return JSON(alert.as_json())


async def get_preferences(request: Request) -> Response:
    _, user_id = await _admin(request)
    return JSON(await notifications.preferences(user_id))


async def put_preferences(request: Request) -> Response:
    _, user_id = await _admin(request)
    update = await read_model(request, PreferencesUpdate)
    return JSON(await notifications.set_preferences(user_id, update))


routes = [
    Route("/api/v1/notifications", list_notifications, methods=["GET"]),
    Route("/api/v1/notifications/unread-count", unread_count, methods=["GET"]),
    Route("/api/v1/notifications/read-all", read_all, methods=["POST"]),
    Route("/api/v1/notifications/{notification_id}/read", read_one, methods=["POST"]),
    Route("/api/v1/notifications/{notification_id}", delete_one, methods=["DELETE"]),
    Route("/api/v1/alerts", list_alerts, methods=["GET"]),
    Route("/api/v1/alerts/{alert_id}/resolve", resolve_alert, methods=["POST"]),
    Route("/api/v1/me/preferences", get_preferences, methods=["GET"]),
    Route("/api/v1/me/preferences", put_preferences, methods=["PUT"]),
]
