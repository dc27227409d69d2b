"""The delivery queue in the database: claim due rows with a lease, record how each send went."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from ordercast.models import Delivery, DeliveryStatus, EventRecord
from ordercast.notify.planning import QUEUED_PER_ORDER

# Due rows that are the head of their recipient's queue (its oldest unfinished row for the same
# channel and recipient, and order for the channels queued per order): oldest first, leased to the
# caller. A `sending` row whose lease ran out was held by a process that died or hung: it is due
# again. The heads come from the unfinished rows alone (found by the status index: no other
# predicate, which a young table's statistics could make the planner prefer over it, and which would
# read the history), grouped once (MATERIALIZED: a plan that recomputed them per row, or a NOT EXISTS
# probe per due row, took seconds per claim under a burst of pushes): a claim costs what the backlog
# holds, whatever the history.
# On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets every process claim at once without waiting on, or
# taking, each other's rows; a head another process is claiming is locked (skipped here) and still
# unfinished (so it blocks its successors).
_CLAIM = """
WITH heads AS MATERIALIZED (
  SELECT MIN(h.seq) AS seq FROM deliveries AS h
  WHERE h.status IN ('pending', 'sending', 'retrying')
  GROUP BY h.channel, h.recipient, CASE WHEN h.channel IN ({per_order}) THEN h.order_id END
), claimable AS (
  SELECT c.seq FROM deliveries AS c JOIN heads ON heads.seq = c.seq
  WHERE c.channel IN ({channels})
    AND ((c.status IN ('pending', 'retrying') AND c.next_attempt_at <= {now})
         OR (c.status = 'sending' AND c.lease_until < {now}))
  ORDER BY c.seq
  LIMIT {limit}
  {lock}
)
UPDATE deliveries
SET status = 'sending', lease_until = {lease_until}, lease_token = {token}, attempts = attempts + 1
WHERE seq IN (SELECT seq FROM claimable)
RETURNING seq
"""


@dataclass(slots=True)
class Claimed:
    """A delivery leased to this process, with what its message is made from."""

    seq: int
    id: str
    token: str
    channel: str
    recipient: str
    locale: str
    event_id: str
    event_type: str
    event_data: dict[str, Any]
    order_id: str | None
    occurred_at: datetime
    attempts: int
    # Set once the request has gone out: from then on a crash may leave it sent but not recorded.
    handed_over: bool = False


class DeliveryQueue:
    """The `deliveries` table as a queue shared by every process."""

    def __init__(self, *, postgres: bool, lease: float) -> None:
        self._postgres = postgres
        self._lease = timedelta(seconds=lease)

    async def claim(self, channels: Sequence[str], limit: int) -> list[Claimed]:
        """Lease up to `limit` due heads of their recipients' queues, oldest first."""
        if not channels or limit <= 0:
            return []
        now = datetime.now(UTC)
        token = secrets.token_hex(16)
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}" if self._postgres else "?"

        # Placeholders are numbered in the order they appear in the text (SQLite's `?` are positional).
        per_order = ", ".join(param(channel) for channel in sorted(QUEUED_PER_ORDER)) or "NULL"
        channel_marks = ", ".join(param(channel) for channel in channels)
        now_mark = param(now)
        sql = _CLAIM.replace("{per_order}", per_order).replace("{channels}", channel_marks)
        sql = sql.replace("{now}", now_mark, 1)
        sql = sql.replace("{now}", param(now), 1)
        sql = sql.replace("{limit}", param(limit))
        sql = sql.replace("{lock}", "FOR UPDATE OF c SKIP LOCKED" if self._postgres else "")
        sql = sql.replace("{lease_until}", param(now + self._lease)).replace("{token}", param(token))
        _, rows = await connections.get("default").execute_query(sql, params)
        seqs = [int(row["seq"]) for row in rows]
        if not seqs:
            return []
        deliveries = await Delivery.filter(seq__in=seqs).order_by("seq")
        events = {
            record["id"]: record
            for record in await EventRecord.filter(id__in={d.event_id for d in deliveries}).values("id", "type", "data")
        }
        claimed = []
        for delivery in deliveries:
            event = events.get(delivery.event_id, {"type": "", "data": {}})
            claimed.append(
                Claimed(
                    seq=delivery.seq,
                    id=delivery.id,
                    token=token,
                    channel=delivery.channel,
                    recipient=delivery.recipient,
                    locale=delivery.locale,
                    event_id=delivery.event_id,
                    event_type=event["type"],
                    event_data=event["data"],
                    order_id=delivery.order_id,
                    occurred_at=delivery.occurred_at,
                    attempts=delivery.attempts,
                )
            )
        return claimed

    async def sent(self, claimed: Claimed, at: datetime) -> bool:
        return await self._settle(claimed, status=DeliveryStatus.SENT, sent_at=at)

    async def retry(self, claimed: Claimed, error: str, delay: float) -> bool:
        due = datetime.now(UTC) + timedelta(seconds=delay)
        return await self._settle(claimed, status=DeliveryStatus.RETRYING, last_error=error, next_attempt_at=due)

    async def fail(self, claimed: Claimed, error: str, *, using: Any = None) -> bool:
        """Failed for good; `using`: in the caller's transaction (with the alert it raises)."""
        return await self._settle(claimed, status=DeliveryStatus.FAILED, last_error=error, using=using)

    async def skip_recipient(self, claimed: Claimed, reason: str) -> int:
        """Skip this delivery and every unfinished one after it to the same recipient (it is gone)."""
        async with in_transaction() as conn:
            done = await self._settle(claimed, status=DeliveryStatus.SKIPPED, last_error=reason, using=conn)
            later = (
                await Delivery.filter(
                    channel=claimed.channel,
                    recipient=claimed.recipient,
                    status__in=[DeliveryStatus.PENDING.value, DeliveryStatus.RETRYING.value],
                )
                .using_db(conn)
                .update(status=DeliveryStatus.SKIPPED.value, last_error=reason)
            )
        return int(done) + later

    async def release(self, claimed: Claimed) -> bool:
        """Give back a claim that never reached the provider (shutting down): due again at once."""
        attempts = max(claimed.attempts - 1, 0)
        status = DeliveryStatus.RETRYING if attempts else DeliveryStatus.PENDING
        return await self._settle(claimed, status=status, attempts=attempts, next_attempt_at=datetime.now(UTC))

    async def _settle(self, claimed: Claimed, *, status: DeliveryStatus, using: Any = None, **fields: Any) -> bool:
        # Only the holder of the lease records: if it ran out and another process took the row
        # over, that process's outcome is the one that counts.
        query = Delivery.filter(seq=claimed.seq, lease_token=claimed.token, status=DeliveryStatus.SENDING.value)
        if using is not None:
            query = query.using_db(using)
        updated = await query.update(status=status.value, lease_until=None, lease_token=None, **fields)
        return updated == 1
