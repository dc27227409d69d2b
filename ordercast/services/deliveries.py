"""Deliveries as the use cases write them (in the change's transaction) and the API reads them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.functions import Count

from ordercast.events import Event
from ordercast.models import UNFINISHED, Delivery, DeliveryStatus
from ordercast.notify import planning

# Latency percentiles are computed over this many of the latest sent deliveries per channel.
STATS_WINDOW = 10_000


async def record_deliveries(
    conn: BaseDBAsyncClient,
    event: Event,
    *,
    customer_id: str | None,
    admins: Sequence[planning.AdminRecipient] = (),
) -> list[Delivery]:
    """Write the delivery rows `event` causes, in the caller's transaction (so none is lost or doubled).

    `admins`: who hears of it, with their preferences (given for the events admins are told of).
    """
    chat = None
    if customer_id is not None and planning.wants_customer_chat(event.type, event.data):
        chat = await _customer_chat(conn, customer_id)
    audience = planning.Audience(customer_chat=chat, admins=tuple(admins))
    rows = []
    for planned in planning.plan(event.type, event.data, audience):
        rows.append(
            await Delivery.create(
                event_id=event.id,
                order_id=event.ordering_key,
                channel=planned.channel,
                recipient=planned.recipient,
                locale=planned.locale,
                status=planned.status,
                last_error=planned.reason,
                occurred_at=event.occurred_at,
                next_attempt_at=event.occurred_at,
                using_db=conn,
            )
        )
    return rows


# In every status change's transaction: plain SQL, as building the ORM query costs more than running it.
# On PostgreSQL the chat's row is share-locked until the change commits: a sender marking the chat
# gone (an UPDATE) waits for it, and then skips what it planned; without the lock a message planned
# from the chat's old state could commit after that skip, and be sent to a chat that blocked the bot.
# (SQLite runs one write transaction at a time: there the change already excludes the sender.)
_CUSTOMER_CHAT = (
    "SELECT c.chat_id, c.stopped, c.inactive, u.locale FROM telegram_chats AS c"
    " JOIN customers AS u ON u.id = c.customer_id WHERE c.customer_id = {}"
)


async def _customer_chat(conn: BaseDBAsyncClient, customer_id: str) -> planning.CustomerChat | None:
    if conn.capabilities.dialect == "sqlite":
        sql = _CUSTOMER_CHAT.format("?")
    else:
        sql = _CUSTOMER_CHAT.format("$1") + " FOR SHARE OF c"
    _, rows = await conn.execute_query(sql, [customer_id])
    if not rows:
        return None
    row = rows[0]
    return planning.CustomerChat(
        chat_id=int(row["chat_id"]),
        locale=row["locale"] or "en",
        stopped=bool(row["stopped"]),
        inactive=bool(row["inactive"]),
    )


async def page(
    *,
    order_id: str | None,
    channel: str | None,
    status: DeliveryStatus | None,
    limit: int,
    before_seq: int | None,
) -> list[Delivery]:
    """Newest first; `limit + 1` rows tell whether more follow."""
    query = Delivery.all()
    if order_id is not None:
        query = query.filter(order_id=order_id)
    if channel is not None:
        query = query.filter(channel=channel)
    if status is not None:
        query = query.filter(status=status.value)
    if before_seq is not None:
        query = query.filter(seq__lt=before_seq)
    return await query.order_by("-seq").limit(limit + 1)


@dataclass(frozen=True, slots=True)
class ChannelStats:
    sent: int = 0
    failed: int = 0
    pending: int = 0
    retried: int = 0
    p50_seconds: float | None = None
    p95_seconds: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "failed": self.failed,
            "pending": self.pending,
            "retried": self.retried,
            "p50_seconds": self.p50_seconds,
            "p95_seconds": self.p95_seconds,
        }


async def stats() -> dict[str, ChannelStats]:
    """Per channel: counts by outcome, how many needed more than one attempt, and send latency."""
    counts: dict[str, dict[str, int]] = {channel: {} for channel in planning.CHANNELS}
    for row in await Delivery.annotate(n=Count("seq")).group_by("channel", "status").values("channel", "status", "n"):
        counts.setdefault(row["channel"], {})[row["status"]] = row["n"]
    result = {}
    for channel, by_status in counts.items():
        retried = await Delivery.filter(channel=channel, attempts__gt=1).count()
        sent = (
            await Delivery.filter(channel=channel, status=DeliveryStatus.SENT.value)
            .order_by("-seq")
            .limit(STATS_WINDOW)
            .values_list("occurred_at", "sent_at")
        )
        latencies = sorted(max(0.0, (s - o).total_seconds()) for o, s in sent if s is not None)
        result[channel] = ChannelStats(
            sent=by_status.get(DeliveryStatus.SENT.value, 0),
            failed=by_status.get(DeliveryStatus.FAILED.value, 0),
            pending=sum(by_status.get(status.value, 0) for status in UNFINISHED),
            retried=retried,
            p50_seconds=_percentile(latencies, 50),
            p95_seconds=_percentile(latencies, 95),
        )
    return result


def _percentile(values: list[float], percent: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 6)
    return round(statistics.quantiles(values, n=100, method="inclusive")[percent - 1], 6)
