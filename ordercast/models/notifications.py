"""What admins are told: in-app notifications, alerts, their preferences, and their push subscriptions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from tortoise import fields
from tortoise.models import Model

from ordercast.events import format_time
from ordercast.ids import new_id
from ordercast.models.tables import AdminUser


class Category(StrEnum):
    ORDERS = "orders"
    PAYMENTS = "payments"
    ALERTS = "alerts"
    SYSTEM = "system"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


SEVERITY_RANK = {severity: rank for rank, severity in enumerate(Severity)}

# No semicolons in the models' docstrings: migrations copy them into SQLite DDL, which is split at semicolons.


def notification_id() -> str:
    return new_id("ntf")


def alert_id() -> str:
    return new_id("alr")


def subscription_id() -> str:
    return new_id("sub")


class Notification(Model):
    """One admin's copy of something that happened, until they delete it or it expires."""

    id = fields.CharField(primary_key=True, max_length=40, default=notification_id)
    user: fields.ForeignKeyRelation[AdminUser] = fields.ForeignKeyField(
        "models.AdminUser", related_name="notifications", on_delete=fields.CASCADE
    )
    user_id: str
    # The event that caused it: one notification per admin per event.
    event_id = fields.CharField(max_length=40)
    category = fields.CharField(max_length=10)
    priority = fields.CharField(max_length=10)
    title = fields.CharField(max_length=255)
    body = fields.TextField()
    url = fields.CharField(max_length=1000, null=True)
    order_id = fields.CharField(max_length=40, null=True)
    read_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "notifications"
        unique_together = (("event_id", "user_id"),)
        indexes = (("user_id", "id"), ("user_id", "read_at"))

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "priority": self.priority,
            "title": self.title,
            "body": self.body,
            "url": self.url,
            "order_id": self.order_id,
            "read_at": format_time(self.read_at) if self.read_at else None,
            "created_at": format_time(self.created_at),
        }


class Alert(Model):
    """A problem the admins should look at: raising it again while open adds an occurrence."""

    id = fields.CharField(primary_key=True, max_length=40, default=alert_id)
    key = fields.CharField(max_length=255, db_index=True)
    # The key while the alert is open, null once resolved: the unique index allows one open alert per key.
    open_key = fields.CharField(max_length=255, null=True, unique=True)
    severity = fields.CharField(max_length=10)
    title = fields.CharField(max_length=255)
    message = fields.TextField()
    occurrences = fields.IntField(default=1)
    first_seen = fields.DatetimeField()
    last_seen = fields.DatetimeField()
    resolved_at = fields.DatetimeField(null=True)
    resolution_note: str | None = fields.TextField(null=True)

    class Meta:
        table = "alerts"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "key": self.key,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "occurrences": self.occurrences,
            "first_seen": format_time(self.first_seen),
            "last_seen": format_time(self.last_seen),
            "resolved_at": format_time(self.resolved_at) if self.resolved_at else None,
            "resolution_note": self.resolution_note,
        }


class NotificationPreference(Model):
    """An admin's choice for one category (no row: both channels on)."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[AdminUser] = fields.ForeignKeyField(
        "models.AdminUser", related_name="preferences", on_delete=fields.CASCADE
    )
    user_id: str
    category = fields.CharField(max_length=10)
    push = fields.BooleanField(default=True)
    in_app = fields.BooleanField(default=True)

    class Meta:
        table = "notification_preferences"
        unique_together = (("user_id", "category"),)


class PushSubscription(Model):
    """A browser's PushSubscription for an admin: where to send, and the keys to encrypt for it."""

    id = fields.CharField(primary_key=True, max_length=40, default=subscription_id)
    user: fields.ForeignKeyRelation[AdminUser] = fields.ForeignKeyField(
        "models.AdminUser", related_name="push_subscriptions", on_delete=fields.CASCADE
    )
    user_id: str
    endpoint = fields.CharField(max_length=1024, unique=True)
    # The push service (`https://fcm.googleapis.com`): what a 429 pauses.
    origin = fields.CharField(max_length=255, db_index=True)
    p256dh = fields.CharField(max_length=128)
    auth = fields.CharField(max_length=64)
    expires_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    # What the admin calls the device ("work laptop"), if anything.
    name = fields.CharField(max_length=100, null=True)
    # Subscribed again or pushed to successfully: the least recently used goes when an admin has too many.
    last_used_at = fields.DatetimeField(null=True)
    last_success_at = fields.DatetimeField(null=True)
    # The category of the last failed push (`http_403`, `timeout`), cleared by a success.
    last_error = fields.CharField(max_length=200, null=True)

    class Meta:
        table = "push_subscriptions"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "endpoint": self.endpoint,
            "name": self.name,
            "expires_at": format_time(self.expires_at) if self.expires_at else None,
            "created_at": format_time(self.created_at),
        }

    def as_device_json(self) -> dict[str, Any]:
        """As the admin's device list shows it: where it is, never its endpoint's secret path or keys."""
        return {
            "id": self.id,
            "name": self.name,
            "endpoint_host": urlsplit(self.endpoint).hostname or "",
            "created_at": format_time(self.created_at),
            "last_used_at": format_time(self.last_used_at) if self.last_used_at else None,
            "last_success_at": format_time(self.last_success_at) if self.last_success_at else None,
            "last_error": self.last_error,
        }


class PushService(Model):
    """A push service that answered 429: no process pushes to it before `paused_until`."""

    origin = fields.CharField(primary_key=True, max_length=255)
    paused_until = fields.DatetimeField()

    class Meta:
        table = "push_services"
