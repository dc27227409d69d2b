"""Who an update comes from: their chat (created on first contact), their customer, their language;
and `@linked`, which lets only a linked customer through to a command."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from telegram import Update
from telegram.ext import ContextTypes

from ordercast.bot import texts
from ordercast.models import Customer, TelegramChat
from ordercast.notify.templates.texts import Texts
from ordercast.services.telegram import open_chat

Context = ContextTypes.DEFAULT_TYPE
Owner = TypeVar("Owner")


@dataclass(frozen=True, slots=True)
class Caller:
    chat_id: int
    chat: TelegramChat
    customer: Customer | None
    texts: Texts

    def as_linked(self) -> LinkedCaller | None:
        """This caller as a linked one, or None when their chat isn't linked to a customer."""
        if self.customer is None:
            return None
        return LinkedCaller(self.chat_id, self.chat, self.customer, self.texts)


@dataclass(frozen=True, slots=True)
class LinkedCaller(Caller):
    """A caller whose chat is linked to a customer."""

    customer: Customer


async def caller(update: Update) -> Caller:
    chat = update.effective_chat
    assert chat is not None  # the handlers only take updates from (private) chats
    user = update.effective_user
    language = user.language_code if user is not None else None
    row = await open_chat(chat.id, language)
    customer = row.customer
    locale = customer.locale if customer is not None else (language or "en")
    return Caller(chat.id, row, customer, Texts(locale))


async def say(context: Context, who: Caller, text: str) -> None:
    """Send `text` (HTML, values already escaped) to the caller's chat."""
    await context.bot.send_message(chat_id=who.chat_id, text=text)


Command = Callable[[Update, Context], Coroutine[Any, Any, None]]
LinkedCommand = Callable[[Update, Context, LinkedCaller], Coroutine[Any, Any, None]]


@overload
def linked(handler: LinkedCommand) -> Command: ...


@overload
def linked(
    handler: Callable[[Owner, Update, Context, LinkedCaller], Coroutine[Any, Any, None]],
) -> Callable[[Owner, Update, Context], Coroutine[Any, Any, None]]: ...


def linked(handler: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., Coroutine[Any, Any, None]]:
    """A command (function or method) for linked customers only: it gets the caller, loaded once,
    as its last argument; anyone else is told how to link their chat."""

    @functools.wraps(handler)
    async def guarded(*args: Any) -> None:
        *owner, update, context = args
        who = await caller(update)
        linked_who = who.as_linked()
        if linked_who is None:
            await _not_linked(update, context, who)
            return
        await handler(*owner, update, context, linked_who)

    return guarded


async def _not_linked(update: Update, context: Context, who: Caller) -> None:
    """Tell the caller how to link their chat."""
    text = who.texts.fill(texts.NOT_LINKED)
    if update.callback_query is not None:
        # A button press is answered with a short notice (200 characters at most), not a message.
        await update.callback_query.answer(text[:200])
    else:
        await say(context, who, text)
