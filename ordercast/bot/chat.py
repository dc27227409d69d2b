"""Who an update comes from: their chat (created on first contact), their customer, their language."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import Update
from telegram.ext import ContextTypes

from ordercast.models import Customer, TelegramChat
from ordercast.notify.templates import Texts
from ordercast.services.telegram import open_chat


@dataclass(frozen=True, slots=True)
class Caller:
    chat_id: int
    chat: TelegramChat
    customer: Customer | None
    texts: Texts


async def caller(update: Update) -> Caller:
    chat = update.effective_chat
    assert chat is not None  # the handlers only take updates from (private) chats
    user = update.effective_user
    language = user.language_code if user is not None else None
    row = await open_chat(chat.id, language)
    customer = row.customer
    locale = customer.locale if customer is not None else (language or "en")
    return Caller(chat.id, row, customer, Texts(locale))


async def say(context: ContextTypes.DEFAULT_TYPE, who: Caller, text: str) -> None:
    """Send `text` (HTML, values already escaped) to the caller's chat."""
    await context.bot.send_message(chat_id=who.chat_id, text=text)
