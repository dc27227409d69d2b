"""The delivery queue in the database: claim due rows with a lease, record how each send went."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise import connections
from tortoise.transactions import in_transaction

from ordercast.models import Delivery, DeliveryStatus, EventRecord
from ordercast.notify.planning import QUEUED_PER_ORDER

# Due rows that are the head of their recipient's queue (its oldest unfinished row for the same
# channel and recipient, and order for the channels queued per order): oldest first, leased to the
# caller, up to a limit per channel (each channel has its own send slots: a slow one never takes
# another's). A `sending` row whose lease ran out was held by a process that died or hung: it is due
# again. The heads are ranked from the unfinished rows alone (found by the status index: any other
# predicate there, which a young table's statistics could make the planner prefer, would read the
# history), once (MATERIALIZED), and the due ones picked from them, each channel's oldest up to its
# limit, before the table is touched again: joining every due row to every head was a nested loop that took seconds per
# claim with ten thousand pushes queued, as was a NOT EXISTS probe per due row. A claim costs what
# the backlog holds, whatever the history.
# On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets every process claim at once without waiting on, or
# taking, each other's rows; a head another process is claiming is locked (skipped here) and still
# unfinished (so it blocks its successors). The due conditions are checked again on the locked row:
# another process may have claimed it since the heads were read.
_CLAIM = """
WITH heads AS MATERIALIZED (
  SELECT h.seq, h.channel, h.status, h.next_attempt_at, h.lease_until,
    ROW_NUMBER() OVER (
      PARTITION BY h.channel, h.recipient, CASE WHEN h.channel IN ({per_order}) THEN h.order_id END
      ORDER BY h.seq
    ) AS place
  FROM deliveries AS h
  WHERE h.status IN ('pending', 'sending', 'retrying')
), due AS MATERIALIZED (
  SELECT seq FROM (
    SELECT seq, channel, ROW_NUMBER() OVER (PARTITION BY channel ORDER BY seq) AS place_in_channel
    FROM heads
    WHERE place = 1 AND channel IN ({channels})
      AND ((status IN ('pending', 'retrying') AND next_attempt_at <= {now})
           OR (status = 'sending' AND lease_until < {now}))
  ) AS ranked
  WHERE place_in_channel <= CASE channel {limits} END
), claimable AS (
  SELECT c.seq FROM deliveries AS c
  WHERE c.seq IN (SELECT seq FROM due)
    AND ((c.status IN ('pending', 'retrying') AND c.next_attempt_at <= {now})
         OR (c.status = 'sending' AND c.lease_until < {now}))
  {lock}
)
UPDATE deliveries
SET status = 'sending', lease_until = {lease_until}, lease_token = {token}, attempts = attempts + 1
WHERE seq IN (SELECT seq FROM claimable)
RETURNING seq
"""


_SENT = """
UPDATE deliveries
SET status = 'sent', lease_until = NULL, lease_token = NULL, sent_at = CASE seq {sent_at} END
WHERE status = 'sending' AND lease_token = CASE seq {tokens} END AND seq IN ({seqs})
RETURNING seq
"""
# How long a finished send waits for others to be recorded with it (the provider's answer is in hand:
# `sent_at` is when it came).
_SENT_GATHER = 0.005


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
    # Until when this process holds it: a send must be answered by then, or another process may take
    # the delivery over and send it too.
    lease_until: datetime
    # Set once the request has gone out: from then on a crash may leave it sent but not recorded.
    handed_over: bool = False


class DeliveryQueue:
    """The `deliveries` table as a queue shared by every process."""

    def __init__(self, *, postgres: bool, lease: float) -> None:
        self._postgres = postgres
        self._lease = timedelta(seconds=lease)
        self._sent: list[tuple[Claimed, datetime, asyncio.Future[bool]]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def claim(self, limits: Mapping[str, int]) -> list[Claimed]:
        """Lease due heads of their recipients' queues, oldest first: up to `limits[channel]` of each channel."""
        limits = {channel: limit for channel, limit in limits.items() if limit > 0}
        if not limits:
            return []
        now = datetime.now(UTC)
        lease_until = now + self._lease
        token = secrets.token_hex(16)
        params: list[Any] = []

        def param(value: Any, cast: str = "") -> str:
            params.append(value)
            return f"${len(params)}{cast}" if self._postgres else "?"

        # Placeholders are numbered in the order they appear in the text (SQLite's `?` are positional).
        values: dict[str, list[Any]] = {
            "per_order": sorted(QUEUED_PER_ORDER),
            "channels": list(limits),
            "now": [now],
            "lease_until": [lease_until],
            "token": [token],
        }

        def fill(match: re.Match[str]) -> str:
            if match.group(1) == "lock":
                return "FOR UPDATE OF c SKIP LOCKED" if self._postgres else ""
            if match.group(1) == "limits":
                return " ".join(f"WHEN {param(name)} THEN {param(limit, '::int')}" for name, limit in limits.items())
            return ", ".join(param(value) for value in values[match.group(1)]) or "NULL"

        sql = re.sub(r"\{(\w+)\}", fill, _CLAIM)
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
                    lease_until=lease_until,
                )
            )
        return claimed

    async def sent(self, claimed: Claimed, at: datetime) -> bool:
        """Record a send the provider accepted at `at`. The sends that finish together are recorded in
        one statement: at a few hundred pushes a second, one UPDATE (and commit) each was most of the
        database's work."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._sent.append((claimed, at, future))
        if self._flushing is None:
            self._flushing = asyncio.create_task(self._flush_sent(), name="ordercast.notify.queue.sent")
        return await future

    async def drain(self) -> None:
        """Wait for the sends being recorded (shutting down)."""
        if self._flushing is not None:
            await asyncio.wait({self._flushing})

    async def _flush_sent(self) -> None:
        await asyncio.sleep(_SENT_GATHER)
        batch, self._sent, self._flushing = self._sent, [], None
        try:
            recorded = await self._record_sent([(claimed.seq, claimed.token, at) for claimed, at, _ in batch])
        except Exception as error:  # noqa: BLE001 — each waiting send logs it (its lease runs out: sent again)
            for _, _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for claimed, _, future in batch:
            if not future.done():
                future.set_result(claimed.seq in recorded)

    async def _record_sent(self, rows: Sequence[tuple[int, str, datetime]]) -> set[int]:
        params: list[Any] = []

        def param(value: Any, cast: str = "") -> str:
            params.append(value)
            return f"${len(params)}{cast}" if self._postgres else "?"

        # Each row only if this claim still holds it (its lease token): see `_settle`.
        sent_at = " ".join(f"WHEN {param(seq)} THEN {param(at, '::timestamptz')}" for seq, _, at in rows)
        tokens = " ".join(f"WHEN {param(seq)} THEN {param(token)}" for seq, token, _ in rows)
        seqs = ", ".join(param(seq) for seq, _, _ in rows)
        sql = _SENT.replace("{sent_at}", sent_at, 1).replace("{tokens}", tokens, 1).replace("{seqs}", seqs, 1)
        answer = await connections.get("default").execute_query_dict(sql, params)
        return {int(row["seq"]) for row in answer}

    async def retry(self, claimed: Claimed, error: str, delay: float, *, counted: bool = True) -> bool:
        """Due again after `delay`; not `counted`: a wait the provider asked for (a 429), which gives
        back the attempt its claim counted, so waiting never uses up a delivery's attempts."""
        due = datetime.now(UTC) + timedelta(seconds=delay)
        attempts = claimed.attempts if counted else max(claimed.attempts - 1, 0)
        return await self._settle(
            claimed, status=DeliveryStatus.RETRYING, last_error=error, next_attempt_at=due, attempts=attempts
        )

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

    async def release(self, claimed: Claimed, *, after: float = 0.0, error: str | None = None) -> bool:
        """Give back a claim that was not sent (shutting down, its channel down or rate limited), its
        attempt not counted: due again after `after` seconds; `error` says why it waits."""
        attempts = max(claimed.attempts - 1, 0)
        status = DeliveryStatus.RETRYING if attempts else DeliveryStatus.PENDING
        due = datetime.now(UTC) + timedelta(seconds=after)
        fields: dict[str, Any] = {"attempts": attempts, "next_attempt_at": due}
        if error is not None:
            fields["last_error"] = error
        return await self._settle(claimed, status=status, **fields)

    async def _settle(self, claimed: Claimed, *, status: DeliveryStatus, using: Any = None, **fields: Any) -> bool:
        # Only the holder of the lease records: if it ran out and another process took the row
        # over, that process's outcome is the one that counts.
        query = Delivery.filter(seq=claimed.seq, lease_token=claimed.token, status=DeliveryStatus.SENDING.value)
        if using is not None:
            query = query.using_db(using)
        updated = await query.update(status=status.value, lease_until=None, lease_token=None, **fields)
        return updated == 1
