"""Deliveries: one row per (event, channel, recipient); the table is the senders' queue."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model

from ordercast.events import format_time
from ordercast.ids import new_id


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    RETRYING = "retrying"
    FAILED = "failed"
    SKIPPED = "skipped"


# A recipient's queue is blocked by its oldest row in one of these: messages to one chat go in order.
UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.RETRYING)


def delivery_id() -> str:
    return new_id("dlv")


class Delivery(Model):
    # The queue order: a sequence assigned at insert. Ids are only millisecond-sortable, and two
    # changes of one order can land in the same millisecond.
    seq = fields.BigIntField(primary_key=True)
    id = fields.CharField(max_length=40, unique=True, default=delivery_id)
    event_id = fields.CharField(max_length=40)
    order_id = fields.CharField(max_length=40, null=True, db_index=True)
    channel = fields.CharField(max_length=20)
    # A Telegram chat id, or (with the push channel) a subscription id.
    recipient = fields.CharField(max_length=255)
    locale = fields.CharField(max_length=35, default="en")
    status = fields.CharField(max_length=10, default=DeliveryStatus.PENDING.value)
    attempts = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    # The event's time: latency is measured from it to `sent_at`.
    occurred_at = fields.DatetimeField()
    created_at = fields.DatetimeField(auto_now_add=True)
    next_attempt_at = fields.DatetimeField()
    # While `sending`: the claim's holder (`lease_token`) and when another process may take it over.
    lease_until = fields.DatetimeField(null=True)
    lease_token = fields.CharField(max_length=32, null=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "deliveries"
        unique_together = (("event_id", "channel", "recipient"),)
        indexes = (("status", "next_attempt_at"), ("channel", "recipient", "status", "seq"))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "event_id": self.event_id,
            "order_id": self.order_id,
            "channel": self.channel,
            "recipient": self.recipient,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": format_time(self.created_at),
            "sent_at": format_time(self.sent_at) if self.sent_at else None,
        }
