"""Retention: old finished rows go, everything still owed or recent stays, orders and events are kept."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from ordercast.events import Event
from ordercast.models import (
    AdminSession,
    AdminUser,
    Alert,
    Customer,
    Delivery,
    DeliveryStatus,
    IdempotencyKey,
    LoginFailure,
    Notification,
    TelegramLink,
    WebhookReceipt,
)
from ordercast.services.retention import DAY, Policy, prune

POLICY = Policy(
    retention=30 * DAY,
    unread_notifications=90 * DAY,
    idempotency_keys=DAY,
    webhook_receipts=7 * DAY,
    login_failures=900,
)


def ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


async def delivery(status: DeliveryStatus, created: datetime) -> Delivery:
    row = await Delivery.create(
        event_id=f"evt_{secrets.token_hex(8)}",
        channel="push",
        recipient=secrets.token_hex(4),
        status=status.value,
        occurred_at=created,
        next_attempt_at=created,
    )
    await Delivery.filter(id=row.id).update(created_at=created)
    return row


async def notification(user: AdminUser, created: datetime, *, read: bool) -> Notification:
    return await Notification.create(
        user=user,
        event_id=f"evt_{secrets.token_hex(8)}",
        category="orders",
        priority="normal",
        title="t",
        body="b",
        read_at=created if read else None,
        created_at=created,
    )


async def alert(resolved: datetime | None) -> Alert:
    return await Alert.create(
        key=f"test:{secrets.token_hex(4)}",
        severity="info",
        title="t",
        message="m",
        first_seen=ago(100),
        last_seen=ago(100),
        resolved_at=resolved,
    )


async def test_a_pass_prunes_what_is_past_its_time_and_keeps_the_rest(database: str) -> None:
    user = await AdminUser.create(email=f"{secrets.token_hex(4)}@example.com")
    customer = await Customer.create(external_id=secrets.token_hex(6), name="C")
    old_sent = await delivery(DeliveryStatus.SENT, ago(31))
    old_failed = await delivery(DeliveryStatus.FAILED, ago(31))
    old_but_owed = await delivery(DeliveryStatus.RETRYING, ago(31))
    recent_sent = await delivery(DeliveryStatus.SENT, ago(1))
    old_read = await notification(user, ago(31), read=True)
    old_unread = await notification(user, ago(31), read=False)
    ancient_unread = await notification(user, ago(91), read=False)
    old_resolved, recent_resolved, still_open = await alert(ago(31)), await alert(ago(1)), await alert(None)
    await IdempotencyKey.create(user_id=user.id, key="k-old", request_hash="d", locked_until=ago(2), created_at=ago(2))
    await IdempotencyKey.create(user_id=user.id, key="k-new", request_hash="d", locked_until=ago(0), created_at=ago(0))
    await TelegramLink.create(token_hash=secrets.token_hex(32), customer=customer, expires_at=ago(-1), used_at=ago(0))
    await TelegramLink.create(token_hash=secrets.token_hex(32), customer=customer, expires_at=ago(1))
    unused = await TelegramLink.create(token_hash=secrets.token_hex(32), customer=customer, expires_at=ago(-1))
    await WebhookReceipt.create(webhook_id=secrets.token_hex(8), received_at=ago(8))
    fresh_receipt = await WebhookReceipt.create(webhook_id=secrets.token_hex(8), received_at=ago(1))
    await LoginFailure.create(email="x@example.com", ip="192.0.2.1", at=ago(1))
    ended = await AdminSession.create(user=user, created_at=ago(40), last_seen_at=ago(40), ended_at=ago(31))
    live = await AdminSession.create(user=user, created_at=ago(40), last_seen_at=ago(0))

    published: list[Event] = []
    pruned = await prune(POLICY, publish=published.extend)

    assert pruned["deliveries"] >= 2
    remaining = set(
        await Delivery.filter(id__in=[d.id for d in (old_sent, old_failed, old_but_owed, recent_sent)]).values_list(
            "id", flat=True
        )
    )
    assert remaining == {old_but_owed.id, recent_sent.id}
    kept = set(await Notification.filter(user_id=user.id).values_list("id", flat=True))
    assert kept == {old_unread.id}
    assert {event.data["id"] for event in published if event.type == "notification.deleted"} >= {
        old_read.id,
        ancient_unread.id,
    }
    alerts = set(
        await Alert.filter(id__in=[old_resolved.id, recent_resolved.id, still_open.id]).values_list("id", flat=True)
    )
    assert alerts == {recent_resolved.id, still_open.id}
    assert await IdempotencyKey.filter(user_id=user.id).values_list("key", flat=True) == ["k-new"]
    assert await TelegramLink.filter(customer_id=customer.id).values_list("token_hash", flat=True) == [
        unused.token_hash
    ]
    assert await WebhookReceipt.filter(webhook_id=fresh_receipt.webhook_id).exists()
    assert pruned["webhook_receipts"] >= 1
    assert not await LoginFailure.filter(email="x@example.com").exists()
    sessions = set(await AdminSession.filter(user_id=user.id).values_list("id", flat=True))
    assert sessions == {live.id}
    assert ended.id not in sessions

    assert all(
        count == 0 for kind, count in (await prune(POLICY, publish=published.extend)).items() if kind != "deliveries"
    )
