"""The notification centre: an admin's notifications (read, read all, delete), preferences, expiry.

Every change that moves an admin's unread count writes an event carrying the new count
(`notification.read`, `notification.deleted`), so every open dashboard shows the right number.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from ordercast.errors import NotFound
from ordercast.events import Event
from ordercast.ids import is_id, new_id
from ordercast.models import AdminUser, Category, Notification, NotificationPreference
from ordercast.models.sql import Statement
from ordercast.services import inbox
from ordercast.services.outbox import Publish, record_event
from ordercast.services.schemas import PreferencesUpdate

logger = logging.getLogger("ordercast.notifications")

CHANNELS = ("push", "in_app")


async def page(*, user_id: str, unread: bool | None, limit: int, before_id: str | None) -> list[Notification]:
    """The admin's notifications, newest first; `limit + 1` rows tell whether more follow."""
    query = Notification.filter(user_id=user_id)
    if unread is not None:
        query = query.filter(read_at__isnull=unread)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(limit + 1)


async def unread_count(user_id: str, conn: BaseDBAsyncClient | None = None) -> int:
    query = AdminUser.filter(id=user_id)
    if conn is not None:
        query = query.using_db(conn)
    counts: list[int] = await query.values_list("unread_notifications", flat=True)  # type: ignore[assignment]
    return int(counts[0]) if counts else 0


async def read(user_id: str, notification_id: str, *, publish: Publish) -> Notification:
    """Mark one notification read (reading it again changes nothing)."""
    events: list[Event] = []
    async with in_transaction() as conn:
        unread = _mine(user_id, notification_id).filter(read_at__isnull=True)
        changed = await unread.using_db(conn).update(read_at=datetime.now(UTC))
        if changed:
            counts = await inbox.add_unread(conn, [user_id], -changed)
            data = {"user_id": user_id, "ids": [notification_id], "unread_count": counts[user_id]}
            events.append(await record_event(conn, "notification.read", data))
        notification = await _mine(user_id, notification_id).using_db(conn).first()
        if notification is None:
            raise NotFound(f"no notification {notification_id!r}")
    publish(events)
    return notification


async def read_all(user_id: str, *, publish: Publish) -> int:
    """Mark every unread notification of the admin read; returns the unread count after (0, unless
    notifications arrived meanwhile)."""
    events: list[Event] = []
    async with in_transaction() as conn:
        changed = (
            await Notification.filter(user_id=user_id, read_at__isnull=True)
            .using_db(conn)
            .update(read_at=datetime.now(UTC))
        )
        if not changed:
            return await unread_count(user_id, conn)
        count = (await inbox.add_unread(conn, [user_id], -changed))[user_id]
        events.append(
            await record_event(conn, "notification.read", {"user_id": user_id, "all": True, "unread_count": count})
        )
    publish(events)
    return count


async def delete(user_id: str, notification_id: str, *, publish: Publish) -> None:
    async with in_transaction() as conn:
        notification = await _mine(user_id, notification_id).using_db(conn).select_for_update().first()
        if notification is None:
            raise NotFound(f"no notification {notification_id!r}")
        await notification.delete(using_db=conn)
        if notification.read_at is None:
            count = (await inbox.add_unread(conn, [user_id], -1))[user_id]
        else:
            count = await unread_count(user_id, conn)
        data = {"user_id": user_id, "id": notification_id, "unread_count": count}
        event = await record_event(conn, "notification.deleted", data)
    publish([event])


def _mine(user_id: str, notification_id: str) -> QuerySet[Notification]:
    if not is_id(notification_id, "ntf"):
        raise NotFound(f"no notification {notification_id!r}")
    return Notification.filter(id=notification_id, user_id=user_id)


_EXPIRE = """
DELETE FROM notifications WHERE id IN (
  SELECT id FROM notifications
  WHERE created_at < {cutoff} OR (read_at IS NOT NULL AND created_at < {read_cutoff})
  ORDER BY created_at LIMIT {limit} {lock}
) RETURNING id, user_id, read_at
"""


async def expire(older_than: datetime, *, read_before: datetime, publish: Publish, batch: int = 500) -> int:
    """Delete notifications created before `older_than`, and read ones created before `read_before`, a
    batch per transaction; returns how many.

    Each gets its `notification.deleted` event, so open dashboards drop it too (and the admin's unread
    count drops with an unread one).
    """
    total = 0
    while True:
        async with in_transaction() as conn:
            statement = Statement(conn)
            sql = (
                _EXPIRE.replace("{cutoff}", statement(older_than))
                .replace("{read_cutoff}", statement(read_before))
                .replace("{limit}", statement(batch))
            )
            # Several processes expire at once: each takes rows the others haven't locked.
            rows = await statement.run(sql.replace("{lock}", "FOR UPDATE SKIP LOCKED" if statement.postgres else ""))
            unread = Counter(row["user_id"] for row in rows if row["read_at"] is None)
            counts: dict[str, int] = {}
            for user_id in sorted({row["user_id"] for row in rows}):
                counts.update(await inbox.add_unread(conn, [user_id], -unread[user_id]))
            now = datetime.now(UTC)
            events = [
                Event(
                    id=new_id("evt"),
                    type="notification.deleted",
                    occurred_at=now,
                    data={"user_id": row["user_id"], "id": row["id"], "unread_count": counts[row["user_id"]]},
                )
                for row in rows
            ]
            await inbox.write_events(conn, events)
        publish(events)
        total += len(rows)
        if len(rows) < batch:
            return total


async def preferences(user_id: str) -> dict[str, dict[str, bool]]:
    """Every category's channels for the admin (both on unless they turned one off)."""
    document = {category.value: {"push": True, "in_app": True} for category in Category}
    for row in await NotificationPreference.filter(user_id=user_id).values("category", "push", "in_app"):
        if row["category"] in document:
            document[row["category"]] = {"push": bool(row["push"]), "in_app": bool(row["in_app"])}
    return document


_UPSERT = (
    "INSERT INTO notification_preferences (user_id, category, push, in_app) VALUES {values}"
    " ON CONFLICT (user_id, category) DO UPDATE SET {changes}"
)


async def set_preferences(user_id: str, update: PreferencesUpdate) -> dict[str, dict[str, bool]]:
    """Change the channels `update` names (and only those); returns the whole document."""
    async with in_transaction() as conn:
        for category in sorted(update.model_fields_set):
            choice = getattr(update, category)
            named = [channel for channel in CHANNELS if channel in choice.model_fields_set]
            if not named:
                continue
            statement = Statement(conn)
            values = statement.row((user_id, category, choice.push, choice.in_app))
            changes = ", ".join(f"{channel} = excluded.{channel}" for channel in named)
            await statement.run(_UPSERT.replace("{values}", values).replace("{changes}", changes))
    return await preferences(user_id)
