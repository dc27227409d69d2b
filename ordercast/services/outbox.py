"""The outbox: events are written in the transaction of their change, published after commit."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from ordercast.events import Event, channels_for
from ordercast.ids import new_id
from ordercast.models import EventRecord, Order
from ordercast.models.sql import Statement, insert
from ordercast.models.tables import dump_json
from ordercast.notify.planning import notifies_admins
from ordercast.notify.templates import admin_notice
from ordercast.services import inbox
from ordercast.services.deliveries import record_deliveries

Publish = Callable[[Sequence[Event]], None]


def _as_event(record: EventRecord) -> Event:
    return Event(
        id=record.id,
        type=record.type,
        occurred_at=record.occurred_at,
        data=record.data,
        ordering_key=record.order_id,
        channels=channels_for(record.type, record.customer_id, record.data),
    )


async def record_event(
    conn: BaseDBAsyncClient,
    event_type: str,
    data: dict[str, Any],
    *,
    order: Order | None = None,
    customer_id: str | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Insert an event row, and the deliveries and admins' notifications it causes, in the caller's transaction.

    `order` events carry its version. The `notification.created` events it causes are in the returned
    event's `caused`: publishing the event publishes them.
    """
    customer_id = order.customer_id if order else customer_id
    event = Event(
        id=new_id("evt"),
        type=event_type,
        occurred_at=occurred_at or datetime.now(UTC),
        data=data,
        ordering_key=order.id if order else None,
        channels=channels_for(event_type, customer_id, data),
    )
    # Plain SQL: in every change's transaction, building the ORM's INSERT cost more than running it.
    await insert(
        conn,
        "events",
        ("id", "type", "occurred_at", "order_id", "order_version", "customer_id", "data", "published"),
        [
            (
                event.id,
                event_type,
                event.occurred_at,
                event.ordering_key,
                order.version if order and event_type.startswith("order.") else None,
                customer_id,
                dump_json(data),
                False,
            )
        ],
    )
    notice = admin_notice(event.type, event.data) if notifies_admins(event.type, event.data) else None
    admins = await inbox.audience(conn, notice.category) if notice is not None else ()
    queued = bool(await record_deliveries(conn, event, customer_id=customer_id, admins=admins))
    caused: tuple[Event, ...] = ()
    if notice is not None:
        told = [admin.user_id for admin in admins if admin.in_app]
        caused = tuple(await inbox.notify(conn, notice, told, at=event.occurred_at, cause_id=event.id))
    return replace(event, caused=caused, queued=queued) if caused or queued else event


async def events_of_order(order_id: str) -> list[Event]:
    records = await EventRecord.filter(order_id=order_id).order_by("occurred_at", "id")
    return [_as_event(r) for r in records]


class DatabaseOutbox:
    """The events table as the publisher's outbox.

    It remembers, per order, the newest version it marked published (for the most recent
    `remembered_orders` orders): all of that order's events up to that version are published then
    (placing an event places the earlier ones first, and versions only grow under the order's row
    lock), so publishing the next version needs no query for earlier unpublished ones.
    """

    def __init__(self, remembered_orders: int = 10_000) -> None:
        self._published_up_to: OrderedDict[str, int] = OrderedDict()
        self._remembered_orders = remembered_orders

    async def unpublished(self, limit: int, older_than: float) -> list[Event]:
        cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
        records = (
            await EventRecord.filter(published=False, occurred_at__lte=cutoff)
            .order_by("occurred_at", "id")
            .limit(limit)
        )
        return [_as_event(r) for r in records]

    async def earlier_unpublished(self, event: Event) -> list[Event]:
        version = _order_version(event)
        if event.ordering_key is None or version is None:
            return []
        if self._published_up_to.get(event.ordering_key, 0) >= version - 1:
            return []
        records = await EventRecord.filter(
            order_id=event.ordering_key, published=False, order_version__lt=version
        ).order_by("order_version")
        return [_as_event(r) for r in records]

    async def mark_published(self, events: Sequence[Event]) -> None:
        if not events:
            return
        statement = Statement(connections.get("default"))
        ids = statement.each(event.id for event in events)
        await statement.run(f"UPDATE events SET published = TRUE WHERE id IN ({ids})")  # noqa: S608
        for event in events:
            version = _order_version(event)
            if event.ordering_key is not None and version is not None:
                self._remember(event.ordering_key, version)

    def _remember(self, order_id: str, version: int) -> None:
        known = self._published_up_to.pop(order_id, 0)
        self._published_up_to[order_id] = max(known, version)
        if len(self._published_up_to) > self._remembered_orders:
            self._published_up_to.popitem(last=False)


def _order_version(event: Event) -> int | None:
    """The order version an `order.*` event carries (the rows of other events have none)."""
    if not event.type.startswith("order."):
        return None
    version = event.data.get("order", {}).get("version")
    return version if isinstance(version, int) else None
