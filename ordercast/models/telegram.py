"""Telegram chats (link, preferences, conversation state) and single-use link tokens."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from ordercast.models.tables import Customer


class TelegramChat(Model):
    """A private chat with the bot, linked to at most one customer (and a customer to at most one chat)."""

    # Not the primary key: Tortoise's migration writer drops `generated=False` from an integer key.
    id = fields.BigIntField(primary_key=True)
    chat_id = fields.BigIntField(unique=True)
    customer: fields.OneToOneNullableRelation[Customer] = fields.OneToOneField(
        "models.Customer", related_name="telegram_chat", null=True, on_delete=fields.SET_NULL
    )
    customer_id: str | None
    # `/stop`: the customer asked for no status messages.
    stopped = fields.BooleanField(default=False)
    # Telegram refused the chat ("bot was blocked by the user", "chat not found"); cleared when they write again.
    inactive = fields.BooleanField(default=False)
    inactive_reason = fields.CharField(max_length=255, null=True)
    language = fields.CharField(max_length=35, null=True)
    # The conversation: stars chosen for this order, waiting for an optional comment (any process may
    # take the next update, so this lives here and not in the bot's memory).
    review_order_id = fields.CharField(max_length=40, null=True)
    review_stars = fields.SmallIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "telegram_chats"


class TelegramLink(Model):
    """A `/start <token>` link, single-use and short-lived: only the SHA-256 of the token is stored."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    customer: fields.ForeignKeyRelation[Customer] = fields.ForeignKeyField(
        "models.Customer", related_name="telegram_links", on_delete=fields.CASCADE
    )
    customer_id: str
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "telegram_links"
