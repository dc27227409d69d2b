"""Retention: what ordercast keeps only for a while, pruned by one process at a time every hour and by
`ordercast prune`. Orders and their events are kept: they are the order history."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q

from ordercast.config import Settings
from ordercast.models import (
    UNFINISHED,
    AdminSession,
    Alert,
    Delivery,
    IdempotencyKey,
    LoginFailure,
    TelegramLink,
    WebhookReceipt,
)
from ordercast.running import Periodic
from ordercast.services.notifications import expire
from ordercast.services.outbox import Publish

logger = logging.getLogger("ordercast.retention")

DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class Policy:
    """How long each kind of row is kept, in seconds."""

    retention: float  # deliveries, read notifications, resolved alerts, ended sessions
    unread_notifications: float
    idempotency_keys: float
    webhook_receipts: float
    login_failures: float

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        return cls(
            retention=settings.retention_days * DAY,
            unread_notifications=settings.notification_ttl_days * DAY,
            idempotency_keys=settings.idempotency_ttl,
            webhook_receipts=settings.webhook_receipt_ttl,
            login_failures=settings.login_window,
        )


async def prune(policy: Policy, *, publish: Publish, now: datetime | None = None) -> dict[str, int]:
    """One retention pass; how many rows of each kind went."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(seconds=policy.retention)
    pruned = {
        # Only finished deliveries: a row still due is a message someone is owed.
        "deliveries": await Delivery.filter(created_at__lt=cutoff)
        .exclude(status__in=[status.value for status in UNFINISHED])
        .delete(),
        "notifications": await expire(
            now - timedelta(seconds=policy.unread_notifications), read_before=cutoff, publish=publish
        ),
        "alerts": await Alert.filter(resolved_at__lt=cutoff).delete(),
        "idempotency_keys": await IdempotencyKey.filter(
            created_at__lt=now - timedelta(seconds=policy.idempotency_keys)
        ).delete(),
        "telegram_links": await TelegramLink.filter(Q(used_at__not_isnull=True) | Q(expires_at__lt=now)).delete(),
        "webhook_receipts": await WebhookReceipt.filter(
            received_at__lt=now - timedelta(seconds=policy.webhook_receipts)
        ).delete(),
        "login_failures": await LoginFailure.filter(at__lt=now - timedelta(seconds=policy.login_failures)).delete(),
        "sessions": await AdminSession.filter(ended_at__lt=cutoff).delete(),
    }
    return pruned


class Retention(Periodic):
    """Prunes every `interval` seconds, one process at a time (`turn`: a lock shared by every process
    that says whether this one has it)."""

    name = "ordercast.retention"

    def __init__(
        self,
        policy: Policy,
        *,
        publish: Publish,
        interval: float,
        turn: Callable[[], AbstractAsyncContextManager[bool]],
        extra: Callable[[], Awaitable[int]] | None = None,
    ) -> None:
        super().__init__(interval)
        self.restart_base = min(interval, 1.0)
        self.restart_cap = interval
        self._policy = policy
        self._publish = publish
        self._turn = turn
        self._extra = extra

    async def tick(self) -> None:
        async with self._turn() as mine:
            if not mine:
                return
            pruned = await prune(self._policy, publish=self._publish)
            if self._extra is not None:
                pruned["broker_channels"] = await self._extra()
        if any(pruned.values()):
            logger.info("retention: pruned %s", ", ".join(f"{n} {kind}" for kind, n in pruned.items() if n))
