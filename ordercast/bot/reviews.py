"""`/review`: delivered, unreviewed orders → 1–5 star buttons → an optional comment → a stored review.

Between the press and the comment the state is in the chat's row, so whichever process takes the
next update carries on.
"""

from __future__ import annotations

import contextlib
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.error import BadRequest

from ordercast.bot import texts
from ordercast.bot.caller import Context, LinkedCaller, caller, linked, say
from ordercast.errors import Conflict, NotFound
from ordercast.notify.templates.texts import Value
from ordercast.services.reviews import Reviews
from ordercast.services.telegram import forget_stars, remember_stars

STARS_PATTERN = re.compile(r"^review:(ord_[0-9a-z]{26}):([1-5])$")


def stars_text(stars: int) -> str:
    return "⭐" * stars


class ReviewFlow:
    def __init__(self, reviews: Reviews) -> None:
        self._reviews = reviews

    @linked
    async def review(self, update: Update, context: Context, who: LinkedCaller) -> None:
        orders = await self._reviews.reviewable(who.customer.id)
        if not orders:
            await say(context, who, who.texts.fill(texts.REVIEW_NONE))
            return
        for order in orders:
            buttons = [
                InlineKeyboardButton(f"{stars}⭐", callback_data=f"review:{order.id}:{stars}") for stars in range(1, 6)
            ]
            question = who.texts.fill(
                texts.REVIEW_PICK,
                number=Value(f"#{order.number}"),
                total=who.texts.money(str(order.total), order.currency),
            )
            await context.bot.send_message(
                chat_id=who.chat_id, text=question, reply_markup=InlineKeyboardMarkup([buttons])
            )

    @linked
    async def stars(self, update: Update, context: Context, who: LinkedCaller) -> None:
        query = update.callback_query
        assert query is not None
        assert query.data is not None
        match = STARS_PATTERN.match(query.data)
        assert match is not None  # the handler's pattern
        order_id, stars = match[1], int(match[2])
        try:
            order = await self._reviews.check(who.customer.id, order_id)
        except (NotFound, Conflict):
            await query.answer(who.texts.gettext(texts.REVIEW_GONE))
            await _drop_buttons(update)
            return
        await remember_stars(who.chat_id, order.id, stars)
        await query.answer(stars_text(stars))
        await _drop_buttons(update)
        await say(
            context,
            who,
            who.texts.fill(texts.REVIEW_STARS, number=Value(f"#{order.number}"), stars=stars_text(stars)),
        )

    async def skip(self, update: Update, context: Context) -> None:
        # Not behind `@linked`: an unlinked chat has nothing to skip either, and is told just that.
        who = await caller(update)
        linked_who = who.as_linked()
        if linked_who is None or who.chat.review_order_id is None:
            await say(context, who, who.texts.fill(texts.NOTHING_TO_SKIP))
            return
        await self._finish(context, linked_who, None)

    @linked
    async def text(self, update: Update, context: Context, who: LinkedCaller) -> None:
        """A message that isn't a command: the awaited review comment, or a pointer to /help."""
        message = update.effective_message
        if who.chat.review_order_id is None or message is None or not message.text:
            await say(context, who, who.texts.fill(texts.NOT_UNDERSTOOD))
            return
        await self._finish(context, who, message.text)

    async def _finish(self, context: Context, who: LinkedCaller, comment: str | None) -> None:
        order_id, stars = who.chat.review_order_id, who.chat.review_stars
        assert order_id is not None
        assert stars is not None  # stored together with the order id
        try:
            await self._reviews.create(customer_id=who.customer.id, order_id=order_id, stars=stars, comment=comment)
        except (NotFound, Conflict):
            await say(context, who, who.texts.fill(texts.REVIEW_GONE))
        else:
            await say(context, who, who.texts.fill(texts.REVIEW_THANKS))
        finally:
            await forget_stars(who.chat_id, order_id)


async def _drop_buttons(update: Update) -> None:
    """Take the star buttons off the question, so it can't be answered twice."""
    query = update.callback_query
    assert query is not None
    with contextlib.suppress(BadRequest):  # "message is not modified" / too old to edit
        await query.edit_message_reply_markup(reply_markup=None)
