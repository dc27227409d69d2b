"""The admins' side of an event, inside its transaction: who hears of it (by their preferences) and
their in-app notifications, each with its `notification.created` event and the admin's unread count."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from ordercast.events import Event, format_time
from ordercast.ids import new_id
from ordercast.models.sql import Statement, insert
from ordercast.models.tables import dump_json
from ordercast.notify.planning import AdminRecipient
from ordercast.notify.templates import AdminNotice

_AUDIENCE = """
SELECT u.id AS user_id, p.in_app AS in_app, p.push AS push, s.id AS subscription
FROM admin_users AS u
LEFT JOIN notification_preferences AS p ON p.user_id = u.id AND p.category = {category}
LEFT JOIN push_subscriptions AS s ON s.user_id = u.id
ORDER BY u.id, s.id
"""


async def audience(conn: BaseDBAsyncClient, category: str) -> tuple[AdminRecipient, ...]:
    """Every admin, with their preferences for `category` (no row: on) and their push subscriptions."""
    statement = Statement(conn)
    rows = await statement.run(_AUDIENCE.format(category=statement(category)))
    admins: dict[str, tuple[bool, bool, list[str]]] = {}
    for row in rows:
        in_app = row["in_app"] is None or bool(row["in_app"])
        push = row["push"] is None or bool(row["push"])
        _, _, subscriptions = admins.setdefault(row["user_id"], (in_app, push, []))
        if row["subscription"] is not None:
            subscriptions.append(row["subscription"])
    return tuple(
        AdminRecipient(user_id=user_id, in_app=in_app, push=push, subscriptions=tuple(subscriptions))
        for user_id, (in_app, push, subscriptions) in admins.items()
    )


async def add_unread(conn: BaseDBAsyncClient, user_ids: Iterable[str], delta: int) -> dict[str, int]:
    """Change these admins' unread counts by `delta`; returns the new counts.

    The counters are locked in one order (by id), so transactions that touch several never deadlock
    each other; take them last in a transaction, as they are what concurrent changes queue on.
    """
    ids = sorted(set(user_ids))
    if not ids:
        return {}
    statement = Statement(conn)
    change = statement(delta)
    if statement.postgres:
        marks = statement.each(ids)
        target = f"SELECT id FROM admin_users WHERE id IN ({marks}) ORDER BY id FOR NO KEY UPDATE"  # noqa: S608
    else:
        target = statement.each(ids)
    sql = f"UPDATE admin_users SET unread_notifications = unread_notifications + {change} WHERE id IN ({target})"  # noqa: S608
    rows = await statement.run(sql + " RETURNING id, unread_notifications")
    return {row["id"]: int(row["unread_notifications"]) for row in rows}


_NOTIFICATION_COLUMNS = (
    "id",
    "user_id",
    "event_id",
    "category",
    "priority",
    "title",
    "body",
    "url",
    "order_id",
    "created_at",
)


async def notify(
    conn: BaseDBAsyncClient,
    notice: AdminNotice,
    user_ids: Iterable[str],
    *,
    at: datetime,
    cause_id: str | None,
) -> list[Event]:
    """A notification per admin, each with its `notification.created` event, in the caller's transaction.

    `cause_id`: the event it tells of (none for a test push: the notification's own event then).
    """
    users = sorted(set(user_ids))
    if not users:
        return []
    ids = {user: new_id("ntf") for user in users}
    event_ids = {user: new_id("evt") for user in users}
    title = notice.title[:255]
    await insert(
        conn,
        "notifications",
        _NOTIFICATION_COLUMNS,
        [
            (
                ids[user],
                user,
                cause_id or event_ids[user],
                notice.category,
                notice.priority,
                title,
                notice.body,
                notice.url,
                notice.order_id,
                at,
            )
            for user in users
        ],
    )
    counts = await add_unread(conn, users, 1)
    events = [
        Event(
            id=event_ids[user],
            type="notification.created",
            occurred_at=at,
            data={
                "notification": {
                    "id": ids[user],
                    "category": notice.category,
                    "priority": notice.priority,
                    "title": title,
                    "body": notice.body,
                    "url": notice.url,
                    "order_id": notice.order_id,
                    "read_at": None,
                    "created_at": format_time(at),
                },
                "user_id": user,
                "unread_count": counts[user],
            },
        )
        for user in users
    ]
    await write_events(conn, events)
    return events


async def write_events(conn: BaseDBAsyncClient, events: Sequence[Event]) -> None:
    """Outbox rows for events that cause nothing further (no deliveries, no notifications): one insert."""
    await insert(
        conn,
        "events",
        ("id", "type", "occurred_at", "data", "published"),
        [(event.id, event.type, event.occurred_at, dump_json(event.data), False) for event in events],
    )
