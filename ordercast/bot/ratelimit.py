"""Every message the bot sends goes through Telegram's limits: command replies share them with the
status messages (which reserve their slot themselves, so they can be given back before sending).

A command reply Telegram refuses with 429 is sent again after its `retry_after` (status messages
wait theirs out in the delivery queue instead)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Final

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from ordercast.notify.limits import Limiter
from ordercast.notify.telegram import RESERVED_KEY, retry_after_seconds

logger = logging.getLogger("ordercast.bot")

# A reply is tried this many times at most, and never waits longer than this for one retry_after:
# the customer is waiting, and the updates behind this one too.
REPLY_TRIES: Final = 3
MAX_REPLY_WAIT: Final = 30.0

JSONDict = dict[str, Any]


class SharedLimits(BaseRateLimiter[dict[str, bool]]):
    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter

    async def initialize(self) -> None:
        """Nothing to set up: the limiter is shared and owned by the server's lifespan."""

    async def shutdown(self) -> None:
        """Nothing to release: the limiter outlives the bot."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: dict[str, bool] | None,
    ) -> bool | JSONDict | list[JSONDict]:
        chat_id = data.get("chat_id")
        already = bool(rate_limit_args and rate_limit_args.get(RESERVED_KEY))
        if not endpoint.startswith("send") or chat_id is None or already:
            return await callback(*args, **kwargs)
        tries = 1
        while True:
            await self._limiter.acquire(str(chat_id))
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                wait = retry_after_seconds(error)
                await self._limiter.pause(wait)
                if tries >= REPLY_TRIES or wait > MAX_REPLY_WAIT:
                    raise
                logger.info("Telegram asked to wait %.1f s before replying to a chat", wait)
            finally:
                await self._limiter.sent(str(chat_id))
            tries += 1
            await asyncio.sleep(wait)
