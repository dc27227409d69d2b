"""Telegram chats as the bot and the API use them: link tokens, linking, /stop and /start, gone chats."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from ordercast.models import Customer, TelegramChat, TelegramLink

LinkRefusal = Literal["unknown", "used", "expired"]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_link(customer: Customer, *, ttl: int) -> tuple[str, datetime]:
    """A single-use `/start` token for `customer`, valid `ttl` seconds; only its hash is stored."""
    token = secrets.token_urlsafe(24)  # 32 characters of A-Za-z0-9_-, nothing of the customer in it
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
    await TelegramLink.create(token_hash=_digest(token), customer_id=customer.id, expires_at=expires_at)
    return token, expires_at


async def open_chat(chat_id: int, language: str | None = None) -> TelegramChat:
    """The chat's row, created on its first update; a chat that writes to us is reachable again."""
    chat = await TelegramChat.get_or_none(chat_id=chat_id).select_related("customer")
    if chat is None:
        with contextlib.suppress(IntegrityError):  # another process created it first
            await TelegramChat.create(chat_id=chat_id, language=language)
        chat = await TelegramChat.get(chat_id=chat_id).select_related("customer")
    if chat.inactive:
        await TelegramChat.filter(chat_id=chat_id).update(inactive=False, inactive_reason=None)
        chat.inactive = False
    return chat


@dataclass(frozen=True, slots=True)
class Linked:
    customer: Customer
    moved_from: str | None  # the customer this chat was linked to before, if another


async def link_chat(token: str, chat_id: int) -> Linked | LinkRefusal:
    """Use `token` to link the chat to its customer (moving the link from any other chat or customer)."""
    await open_chat(chat_id)
    now = datetime.now(UTC)
    async with in_transaction() as conn:
        link = await TelegramLink.select_for_update().using_db(conn).get_or_none(token_hash=_digest(token))
        if link is None:
            return "unknown"
        if link.used_at is not None:
            return "used"
        if link.expires_at <= now:
            return "expired"
        link.used_at = now
        await link.save(using_db=conn, update_fields=["used_at"])
        customer = await Customer.select_for_update().using_db(conn).get(id=link.customer_id)
        chat = await TelegramChat.select_for_update().using_db(conn).get(chat_id=chat_id)
        previous = chat.customer_id
        if previous is not None and previous != customer.id:
            await Customer.filter(id=previous).using_db(conn).update(telegram_chat_id=None)
        # The customer's link moves here: their old chat (if any) is linked to no one.
        await (
            TelegramChat.filter(customer_id=customer.id)
            .exclude(chat_id=chat_id)
            .using_db(conn)
            .update(customer_id=None, review_order_id=None, review_stars=None)
        )
        await (
            TelegramChat.filter(chat_id=chat_id)
            .using_db(conn)
            .update(
                customer_id=customer.id,
                stopped=False,
                inactive=False,
                inactive_reason=None,
                review_order_id=None,
                review_stars=None,
            )
        )
        customer.telegram_chat_id = chat_id
        await customer.save(using_db=conn, update_fields=["telegram_chat_id"])
    return Linked(customer, previous if previous != customer.id else None)


async def set_stopped(chat_id: int, stopped: bool) -> None:
    """`/stop` (no status messages: they are planned as skipped) and `/start` (on again)."""
    await TelegramChat.filter(chat_id=chat_id).update(stopped=stopped)


async def forget_chat(chat_id: int, reason: str) -> None:
    """Telegram says the chat is gone (blocked, deleted): plan nothing for it until it writes again."""
    await TelegramChat.filter(chat_id=chat_id).update(inactive=True, inactive_reason=reason[:255])


async def remember_stars(chat_id: int, order_id: str, stars: int) -> None:
    """The conversation's state: these stars for this order, waiting for an optional comment."""
    await TelegramChat.filter(chat_id=chat_id).update(review_order_id=order_id, review_stars=stars)


async def forget_stars(chat_id: int, order_id: str) -> None:
    await TelegramChat.filter(chat_id=chat_id, review_order_id=order_id).update(review_order_id=None, review_stars=None)
