"""Polling in exactly one process: the one holding a Redis lock (or the only process, without Redis)."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError
from telegram.error import TelegramError
from telegram.ext import Updater

from ordercast.running import Periodic

logger = logging.getLogger("ordercast.bot")

# Extend the lock only while we still hold it; release it the same way.
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Poller(Periodic):
    """Runs the Updater's long polling while this process leads, checked every third of the lock's
    lifetime; another process takes over when it dies. Without Redis, this (only) process polls."""

    name = "ordercast.bot.polling"

    def __init__(
        self,
        updater: Updater,
        *,
        redis: Redis | None,
        key: str,
        lock_ttl: float,
        poll_timeout: int,
        allowed_updates: Sequence[str],
    ) -> None:
        ttl_ms = max(1, round(lock_ttl * 1000))
        super().__init__(ttl_ms / 3000)
        self._updater = updater
        self._redis = redis
        self._key = key
        self._ttl_ms = ttl_ms
        self._poll_timeout = poll_timeout
        self._allowed = list(allowed_updates)
        self._token = secrets.token_hex(16)
        self._renewed_at = 0.0
        self.leading = False

    async def tick(self) -> None:
        held = True if self._redis is None else await self._hold(self._redis)
        if held and not self.leading:
            logger.info("this process polls Telegram for updates")
            await self._start_polling()
        elif not held and self.leading:
            logger.warning("lost the polling lock; another process polls now")
            await self._stop_polling()

    async def close(self) -> None:
        """Stop polling and give the lock up."""
        await super().close()
        await self._stop_polling()
        if self._redis is not None and self._renewed_at:
            with contextlib.suppress(RedisError, OSError):
                await self._redis.eval(_RELEASE, 1, self._key, self._token)

    async def _hold(self, redis: Redis) -> bool:
        """Whether this process holds the lock: taken when free, renewed while held."""
        try:
            if self.leading:
                held = bool(await redis.eval(_RENEW, 1, self._key, self._token, self._ttl_ms))
            else:
                held = bool(await redis.set(self._key, self._token, nx=True, px=self._ttl_ms))
        except (RedisError, OSError):
            logger.warning("the polling lock can't be checked in Redis", exc_info=True)
            # Without Redis we can't tell: keep polling until the lock would have expired.
            return self.leading and time.monotonic() - self._renewed_at < self._ttl_ms / 1000 * 2 / 3
        if held:
            self._renewed_at = time.monotonic()
        return held

    async def _start_polling(self) -> None:
        await self._updater.start_polling(
            timeout=self._poll_timeout,
            allowed_updates=self._allowed,
            bootstrap_retries=-1,
            error_callback=_log_polling_error,
        )
        self.leading = True

    async def _stop_polling(self) -> None:
        if self.leading and self._updater.running:
            self.leading = False
            await self._updater.stop()
        self.leading = False


def _log_polling_error(error: TelegramError) -> None:
    logger.warning("polling Telegram failed (retrying): %s", error)
