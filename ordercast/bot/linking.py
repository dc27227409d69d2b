"""`/start <token>` links the chat to a customer; `/start` and `/stop` turn status messages on and off."""

from __future__ import annotations

import re

from telegram import Update

from ordercast.bot import texts
from ordercast.bot.caller import Context, LinkedCaller, caller, linked, say
from ordercast.notify.templates.texts import Texts
from ordercast.services.telegram import link_chat, set_stopped

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


async def start(update: Update, context: Context) -> None:
    if not context.args:
        await _resume(update, context)
        return
    who = await caller(update)
    token = context.args[0]
    result = await link_chat(token, who.chat_id) if _TOKEN.match(token) else "unknown"
    if isinstance(result, str):
        await say(context, who, who.texts.fill(texts.REFUSED[result]))
        return
    t = Texts(result.customer.locale)
    await say(context, who, t.fill(texts.LINKED, name=result.customer.name))


@linked
async def _resume(update: Update, context: Context, who: LinkedCaller) -> None:
    await set_stopped(who.chat_id, False)
    await say(context, who, who.texts.fill(texts.STARTED))


@linked
async def stop(update: Update, context: Context, who: LinkedCaller) -> None:
    await set_stopped(who.chat_id, True)
    await say(context, who, who.texts.fill(texts.STOPPED))
