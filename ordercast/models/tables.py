"""Tortoise models: what ordercast stores."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import orjson
from tortoise import fields
from tortoise.models import Model

from ordercast.events import format_time
from ordercast.ids import new_id
from ordercast.models.lifecycle import OrderStatus, check_transition
from ordercast.models.money import format_amount


def dump_json(value: Any) -> str:
    return orjson.dumps(value).decode()


# Module-level id factories: migrations record a field's default by its import path.
def customer_id() -> str:
    return new_id("cus")


def order_id() -> str:
    return new_id("ord")


def event_id() -> str:
    return new_id("evt")


def review_id() -> str:
    return new_id("rev")


def user_id() -> str:
    return new_id("usr")


def api_key_id() -> str:
    return new_id("key")


def _id_field(factory: Callable[[], str]) -> fields.CharField[str]:
    return fields.CharField(primary_key=True, max_length=40, default=factory)


class Customer(Model):
    id = _id_field(customer_id)
    external_id = fields.CharField(max_length=255, unique=True)
    name = fields.CharField(max_length=255)
    email = fields.CharField(max_length=320, null=True)
    locale = fields.CharField(max_length=35, default="en")
    telegram_chat_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "customers"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "external_id": self.external_id,
            "name": self.name,
            "email": self.email,
            "locale": self.locale,
            "telegram_linked": self.telegram_chat_id is not None,
            "created_at": format_time(self.created_at),
        }


class Order(Model):
    id = _id_field(order_id)
    number = fields.CharField(max_length=8, unique=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="orders", on_delete=fields.RESTRICT
    )
    customer_id: str
    status = fields.CharField(max_length=20, default=OrderStatus.PENDING_PAYMENT.value, db_index=True)
    currency = fields.CharField(max_length=3)
    total = fields.DecimalField(max_digits=20, decimal_places=4)
    # Line items are an immutable snapshot of what was bought, read with the order in one row.
    items: list[dict[str, Any]] = fields.JSONField(encoder=dump_json, decoder=orjson.loads)
    external_id = fields.CharField(max_length=255, null=True)
    tracking_number = fields.CharField(max_length=255, null=True)
    note = fields.TextField(null=True)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "orders"

    def transition(self, *, to: OrderStatus) -> OrderStatus:
        """Move to `to` if the state machine allows it; return the status it left."""
        current = OrderStatus(self.status)
        check_transition(current, to)
        self.status = to.value
        self.version += 1
        return current

    def as_json(self, *, internal: bool = True) -> dict[str, Any]:
        """The order as the API shows it; `internal=False` leaves out the shop's note (what customers,
        tracking links and every event see)."""
        shown = {
            "id": self.id,
            "number": self.number,
            "customer_id": self.customer_id,
            "status": self.status,
            "currency": self.currency,
            "total": format_amount(Decimal(self.total), self.currency),
            "items": self.items,
            "tracking_number": self.tracking_number,
            "note": self.note,
            "version": self.version,
            "created_at": format_time(self.created_at),
            "updated_at": format_time(self.updated_at),
        }
        if not internal:
            del shown["note"]
        return shown


class EventRecord(Model):
    """The outbox: every event, written in the transaction of the change that caused it."""

    id = _id_field(event_id)
    type = fields.CharField(max_length=40)
    occurred_at = fields.DatetimeField()
    order_id = fields.CharField(max_length=40, null=True, db_index=True)
    order_version = fields.IntField(null=True)
    customer_id = fields.CharField(max_length=40, null=True)
    data: dict[str, Any] = fields.JSONField(encoder=dump_json, decoder=orjson.loads)
    published = fields.BooleanField(default=False, db_index=True)

    class Meta:
        table = "events"
        unique_together = (("order_id", "order_version"),)


class Review(Model):
    id = _id_field(review_id)
    order: fields.OneToOneRelation[Order] = fields.OneToOneField(
        "models.Order", related_name="review", on_delete=fields.CASCADE
    )
    order_id: str
    customer_id = fields.CharField(max_length=40)
    stars = fields.SmallIntField()
    comment = fields.TextField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "reviews"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "order_id": self.order_id,
            "customer_id": self.customer_id,
            "stars": self.stars,
            "comment": self.comment,
            "created_at": format_time(self.created_at),
        }


class AdminUser(Model):
    id = _id_field(user_id)
    email = fields.CharField(max_length=320, unique=True)
    # None for the built-in `service` admin that API keys from the environment act as.
    password_hash = fields.CharField(max_length=255, null=True)
    # Kept by every change to their notifications, in its transaction: counting rows would cost more
    # with every unread notification.
    unread_notifications = fields.IntField(default=0, db_default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Set by `ordercast admin disable`: no login, no session, no API key acts as them until enabled.
    disabled_at = fields.DatetimeField(null=True)

    class Meta:
        table = "admin_users"


class ApiKey(Model):
    id = _id_field(api_key_id)
    user: fields.ForeignKeyRelation[AdminUser] = fields.ForeignKeyField(
        "models.AdminUser", related_name="api_keys", on_delete=fields.CASCADE
    )
    user_id: str
    name = fields.CharField(max_length=255, default="")
    key_hash = fields.CharField(max_length=64, unique=True)
    # The key's first characters, so its owner can tell keys apart ("" for keys made before it was kept).
    prefix = fields.CharField(max_length=16, default="", db_default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    # Written at most once a minute per process (on a lookup the cache missed), not on every request.
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"


class LoginFailure(Model):
    """A login attempt: written before it is judged (so parallel guesses all count), kept if it failed."""

    id = fields.BigIntField(primary_key=True)
    email = fields.CharField(max_length=320)
    ip = fields.CharField(max_length=64, default="", db_default="")
    at = fields.DatetimeField()

    class Meta:
        table = "login_failures"
        indexes = (("email", "ip", "at"), ("ip", "at"))


class IdempotencyKey(Model):
    id = fields.BigIntField(primary_key=True)
    user_id = fields.CharField(max_length=40)
    key = fields.CharField(max_length=255)
    request_hash = fields.CharField(max_length=64)
    # While `response_status` is null the first request is still running; after `locked_until`
    # a crashed request's key is free to be taken again.
    locked_until = fields.DatetimeField()
    response_status = fields.SmallIntField(null=True)
    response_body: dict[str, Any] | None = fields.JSONField(null=True, encoder=dump_json, decoder=orjson.loads)
    created_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "idempotency_keys"
        unique_together = (("user_id", "key"),)


class StoredSecret(Model):
    """Generated secrets (session key, VAPID key, …), created once so every process agrees."""

    name = fields.CharField(primary_key=True, max_length=64)
    value = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "secrets"
