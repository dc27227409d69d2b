"""Alerts: problems for the admins, deduplicated by key (one open alert per key counts occurrences)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from ordercast.errors import Conflict, NotFound
from ordercast.events import Event
from ordercast.ids import is_id
from ordercast.models import Alert, Severity
from ordercast.models.notifications import SEVERITY_RANK
from ordercast.models.sql import Statement
from ordercast.services.outbox import Publish, record_event

SeverityName = Literal["info", "warning", "error", "critical"]
MAX_KEY = 255
MAX_TITLE = 255
MAX_MESSAGE = 4000
_INSERT = (
    "INSERT INTO alerts (id, key, open_key, severity, title, message, occurrences, first_seen, last_seen)"
    " VALUES {values} ON CONFLICT (open_key) DO NOTHING RETURNING id"
)


async def raise_alert(
    conn: BaseDBAsyncClient,
    *,
    key: str,
    severity: SeverityName,
    title: str,
    message: str,
) -> list[Event]:
    """Open an alert for `key`, or add an occurrence to the open one, in the caller's transaction.

    Writes `alert.raised`, and for a new alert the admins' notifications (with their
    `notification.created` events and push deliveries, as their preferences say). Returns every event
    recorded: publish them after the commit.
    """
    key, title, message = key[:MAX_KEY], title[:MAX_TITLE], message[:MAX_MESSAGE]
    now = datetime.now(UTC)
    alert = await _open(conn, key)
    if alert is None:
        alert = await _insert(conn, key=key, severity=severity, title=title, message=message, at=now)
        if alert is not None:
            return await _raised(conn, alert)
        # Another transaction opened it first (our insert waited for theirs, then conflicted).
        alert = await _open(conn, key)
        assert alert is not None, f"the open alert {key!r} vanished"
    alert.occurrences += 1
    alert.last_seen = now
    if SEVERITY_RANK[Severity(severity)] > SEVERITY_RANK[Severity(alert.severity)]:
        alert.severity = severity
    alert.title, alert.message = title, message
    await alert.save(using_db=conn, update_fields=["occurrences", "last_seen", "severity", "title", "message"])
    return await _raised(conn, alert)


async def _open(conn: BaseDBAsyncClient, key: str) -> Alert | None:
    return await Alert.select_for_update().using_db(conn).filter(open_key=key).first()


async def _insert(
    conn: BaseDBAsyncClient, *, key: str, severity: str, title: str, message: str, at: datetime
) -> Alert | None:
    """A new open alert, or None if one with this key was opened meanwhile."""
    alert = Alert(key=key, open_key=key, severity=severity, title=title, message=message, first_seen=at, last_seen=at)
    statement = Statement(conn)
    values = statement.row((alert.id, key, key, severity, title, message, 1, at, at))
    inserted = await statement.run(_INSERT.replace("{values}", values))
    return alert if inserted else None


async def _raised(conn: BaseDBAsyncClient, alert: Alert) -> list[Event]:
    event = await record_event(conn, "alert.raised", {"alert": alert.as_json()})
    return list(event.with_caused())


async def resolve_alert(alert_id: str, *, note: str | None, publish: Publish) -> Alert:
    """Close an open alert (a later raise of its key opens a new one); `Conflict` if it is resolved already."""
    if not is_id(alert_id, "alr"):
        raise NotFound(f"no alert {alert_id!r}")
    async with in_transaction() as conn:
        alert = await Alert.select_for_update().using_db(conn).get_or_none(id=alert_id)
        if alert is None:
            raise NotFound(f"no alert {alert_id!r}")
        if alert.resolved_at is not None:
            raise Conflict("this alert is resolved already", details={"resolved_at": alert.as_json()["resolved_at"]})
        events = await _resolved(conn, alert, note)
    publish(events)
    return alert


async def resolve_key(conn: BaseDBAsyncClient, key: str, *, note: str) -> list[Event]:
    """Close the open alert with `key`, if there is one (the problem went away), in the caller's transaction."""
    alert = await _open(conn, key)
    return [] if alert is None else await _resolved(conn, alert, note)


async def _resolved(conn: BaseDBAsyncClient, alert: Alert, note: str | None) -> list[Event]:
    alert.resolved_at = datetime.now(UTC)
    alert.resolution_note = note
    alert.open_key = None
    await alert.save(using_db=conn, update_fields=["resolved_at", "resolution_note", "open_key"])
    event = await record_event(conn, "alert.resolved", {"alert": alert.as_json()})
    return list(event.with_caused())


async def page(*, resolved: bool | None, limit: int, before_id: str | None) -> Sequence[Alert]:
    """Newest first; `limit + 1` rows tell whether more follow."""
    query = Alert.all()
    if resolved is not None:
        query = query.filter(resolved_at__isnull=not resolved)
    if before_id is not None:
        query = query.filter(id__lt=before_id)
    return await query.order_by("-id").limit(limit + 1)
