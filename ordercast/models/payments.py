"""Payments reported by providers, and the webhook deliveries already answered."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Payment(Model):
    """One provider notice that moved (or was recorded against) an order, once per id and kind."""

    # No semicolons or quotes in these docstrings: they become table comments, and the migration
    # tool splits SQLite scripts on semicolons.

    id = fields.BigIntField(primary_key=True)
    payment_id = fields.CharField(max_length=255)
    kind = fields.CharField(max_length=20)
    order_id = fields.CharField(max_length=40, db_index=True)
    amount = fields.DecimalField(max_digits=20, decimal_places=4)
    currency = fields.CharField(max_length=3)
    outcome = fields.CharField(max_length=20)
    received_at = fields.DatetimeField()

    class Meta:
        table = "payments"
        unique_together = (("payment_id", "kind"),)


class WebhookReceipt(Model):
    """A webhook id answered 2xx, remembered so that a retry of it has no second effect."""

    webhook_id = fields.CharField(primary_key=True, max_length=300)
    received_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "webhook_receipts"
