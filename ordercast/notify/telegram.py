"""The Telegram channel: a status message per delivery, sent with the bot's `Bot` within Telegram's limits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from redis.exceptions import RedisError
from telegram import LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter, TelegramError
from telegram.ext import ExtBot

from ordercast.notify.dispatch import ChannelDown, Postponed, RecipientGone, RetryLater, Undeliverable
from ordercast.notify.limits import Limiter
from ordercast.notify.planning import TELEGRAM
from ordercast.notify.queue import Claimed
from ordercast.notify.templates.customer import status_notice
from ordercast.notify.templates.texts import Shop

# Telegram's descriptions of a chat that is gone for good (the user blocked the bot, deleted the
# account, or the chat never existed); other 400s are about the message.
_GONE = ("bot was blocked", "user is deactivated", "chat not found", "bot can't initiate", "peer_id_invalid")
# Passed with a send whose slot this channel reserved already, so the bot's own limiter lets it through.
RESERVED_KEY: Final = "reserved"
RESERVED: Final = {RESERVED_KEY: True}
# Not PTB's message: the one it raises when the bot starts names the token.
TOKEN_REFUSED: Final = "Telegram refused the bot token (check ORDERCAST_TELEGRAM_TOKEN)"  # noqa: S105 — no secret


def retry_after_seconds(error: RetryAfter) -> float:
    # `RetryAfter.retry_after` warns about its future type on every read; `_retry_after` is the
    # timedelta PTB itself reads (telegram.ext's network loop does the same).
    return error._retry_after.total_seconds()


class TelegramChannel:
    """Sends status messages to customers' chats; `bot` is the running Application's bot (it raises
    `InvalidToken` while Telegram refuses the token), `probe` asks Telegram about the token (getMe)."""

    name = TELEGRAM

    def __init__(
        self,
        bot: Callable[[], Awaitable[ExtBot[Any]]],
        limiter: Limiter,
        shop: Shop,
        *,
        forget_chat: Callable[[int, str], Awaitable[None]],
        probe: Callable[[], Awaitable[object]],
        timeout: float,
    ) -> None:
        self._bot = bot
        self._probe = probe
        self._limiter = limiter
        self._shop = shop
        self._forget_chat = forget_chat
        self._timeout = timeout

    async def send(self, delivery: Claimed) -> None:
        notice = (
            status_notice(delivery.event_data, locale=delivery.locale, shop=self._shop)
            if delivery.event_type == "order.status_changed"
            else None
        )
        if notice is None:
            raise Undeliverable(f"no Telegram message for a {delivery.event_type or 'missing'} event")
        try:
            async with asyncio.timeout(self._timeout):
                bot = await self._bot()
        except TimeoutError:
            # Telegram unreachable at start: not this message's fault, so not counted as a failure.
            raise RetryLater("the bot has not started yet", after=self._timeout) from None
        except InvalidToken:
            raise ChannelDown(TOKEN_REFUSED) from None
        # The send must be answered while the lease lasts, or another process may take the delivery
        # over and send it too: a slot further off (a long 429 pause) is waited for in the queue.
        within = (delivery.lease_until - datetime.now(UTC)).total_seconds() - self._timeout
        try:
            wait = await self._limiter.acquire(delivery.recipient, within=max(0.0, within))
        except (RedisError, OSError) as error:
            raise RetryLater(f"the rate limiter is unavailable: {error}") from None
        if wait:
            raise Postponed(f"Telegram's limits: the next slot is {wait:.1f} s away", after=wait)
        delivery.handed_over = True
        try:
            await bot.send_message(
                chat_id=int(delivery.recipient),
                text=notice.telegram_html(),
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                read_timeout=self._timeout,
                write_timeout=self._timeout,
                connect_timeout=self._timeout,
                pool_timeout=self._timeout,
                rate_limit_args=RESERVED,
            )
        except RetryAfter as error:
            wait = retry_after_seconds(error)
            with contextlib.suppress(RedisError, OSError):  # then only this message waits
                await self._limiter.pause(wait)
            raise RetryLater(error.message, after=wait) from None
        except Forbidden as error:
            raise RecipientGone(error.message) from None
        except BadRequest as error:
            if any(marker in error.message.lower() for marker in _GONE):
                raise RecipientGone(error.message) from None
            raise Undeliverable(error.message) from None
        except InvalidToken:
            # The token was revoked (401) or is malformed (404): not this message's fault.
            raise ChannelDown(TOKEN_REFUSED) from None
        except NetworkError as error:  # timeouts, 5xx, connection errors (TimedOut is a NetworkError)
            raise RetryLater(f"{type(error).__name__}: {error.message}") from None
        except TelegramError as error:
            raise Undeliverable(f"{type(error).__name__}: {error.message}") from None
        finally:
            with contextlib.suppress(RedisError, OSError):  # only spacing is lost
                await self._limiter.sent(delivery.recipient)

    async def recipient_gone(self, recipient: str, reason: str) -> None:
        await self._forget_chat(int(recipient), reason)

    async def probe(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._probe()
        except InvalidToken:
            raise ChannelDown(TOKEN_REFUSED) from None
