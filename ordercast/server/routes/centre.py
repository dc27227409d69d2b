"""The notification centre, alerts and preferences over HTTP."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from ordercast.server.http import JSON, read_model
from ordercast.server.openapi import PAGE, ApiRoute, Operation, in_path, in_query
from ordercast.server.pagination import decode_cursor, encode_cursor, parse_bool, parse_limit
from ordercast.server.runtime import Runtime, runtime
from ordercast.services import alerts, notifications, schemas
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


_NOTIFICATION = in_path("notification_id", "the notification's id")
routes = [
    ApiRoute(
        "GET",
        "/api/v1/notifications",
        list_notifications,
        Operation(
            "The caller's notifications, newest first",
            ok=schemas.NotificationPage,
            params=[in_query("unread", {"type": "boolean"}), *PAGE],
        ),
    ),
    ApiRoute(
        "GET",
        "/api/v1/notifications/unread-count",
        unread_count,
        Operation("How many of the caller's notifications are unread", ok=schemas.UnreadCount),
    ),
    ApiRoute(
        "POST",
        "/api/v1/notifications/read-all",
        read_all,
        Operation("Mark all the caller's notifications read (the unread count after)", ok=schemas.UnreadCount),
    ),
    ApiRoute(
        "POST",
        "/api/v1/notifications/{notification_id}/read",
        read_one,
        Operation("Mark one notification read", ok=schemas.Notification, params=[_NOTIFICATION]),
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/notifications/{notification_id}",
        delete_one,
        Operation("Delete one notification", status=204, params=[_NOTIFICATION]),
    ),
    ApiRoute(
        "GET",
        "/api/v1/alerts",
        list_alerts,
        Operation(
            "Alerts, newest first", ok=schemas.AlertPage, params=[in_query("resolved", {"type": "boolean"}), *PAGE]
        ),
    ),
    ApiRoute(
        "POST",
        "/api/v1/alerts/{alert_id}/resolve",
        resolve_alert,
        Operation(
            "Resolve an open alert (raising its key again opens a new one)",
            ok=schemas.Alert,
            body=AlertResolution,
            body_required=False,
            params=[in_path("alert_id", "the alert's id")],
        ),
    ),
    ApiRoute(
        "GET",
        "/api/v1/me/preferences",
        get_preferences,
        Operation("The caller's channels per category (both on unless turned off)", ok=schemas.Preferences),
    ),
    ApiRoute(
        "PUT",
        "/api/v1/me/preferences",
        put_preferences,
        Operation(
            "Change the channels named; returns the whole document", ok=schemas.Preferences, body=PreferencesUpdate
        ),
    ),
]
