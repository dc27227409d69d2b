"""Every message the bot sends goes through Telegram's limits: command replies share them with the
status messages (which reserve their slot themselves, so they can be given back before sending)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from telegram.ext import BaseRateLimiter

from ordercast.notify.limits import Limiter
from ordercast.notify.telegram import RESERVED_KEY

JSONDict = dict[str, Any]


class SharedLimits(BaseRateLimiter[dict[str, bool]]):
    def __init__(self, limiter: Limiter) -> None:
        self._limiter = limiter

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

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
        await self._limiter.acquire(str(chat_id))
        try:
            return await callback(*args, **kwargs)
        finally:
            await self._limiter.sent(str(chat_id))
