"""The python-telegram-bot Application in the server's event loop, started and stopped by the lifespan.

As in PTB's Starlette custom-webhook example: in webhook mode there is no Updater (`updater(None)`)
and the server's webhook route puts updates on `update_queue`; in polling mode one process (chosen
by a Redis lock) runs the Updater. Either way any process may take any update: conversation state
is in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Final, Literal

from redis.asyncio import Redis
from telegram import BotCommand, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    ExtBot,
    MessageHandler,
    filters,
)

from ordercast.bot import linking, orders, texts
from ordercast.bot.polling import Poller
from ordercast.bot.ratelimit import SharedLimits
from ordercast.bot.reviews import STARS_PATTERN, ReviewFlow
from ordercast.errors import Malformed, Unavailable
from ordercast.notify.limits import Limiter
from ordercast.notify.templates import Texts
from ordercast.running import Loop
from ordercast.services.reviews import Reviews

logger = logging.getLogger("ordercast.bot")

WEBHOOK_PATH: Final = "/api/v1/telegram/webhook"
ALLOWED_UPDATES: Final = ("message", "callback_query")


@dataclass(frozen=True, slots=True)
class BotOptions:
    """What the bot needs of the configuration (`ORDERCAST_TELEGRAM_*`, the public origin)."""

    token: str
    mode: Literal["polling", "webhook"]
    api_url: str
    base_url: str
    send_timeout: float
    poll_timeout: int
    poll_lock_key: str
    poll_lock_ttl: float
    start_retry_cap: float


class TelegramBot(Loop):
    """The bot's lifecycle: build, then (in the background, retrying while Telegram is unreachable)
    initialize, start, set the commands and the webhook or start polling; stop and shut down at exit."""

    name = "ordercast.bot"
    restart_base = 1.0
    # Telegram unreachable (or answering 5xx) while starting: retried without a traceback.
    expected_failures = (TelegramError,)

    def __init__(
        self, options: BotOptions, *, webhook_secret: str, redis: Redis | None, reviews: Reviews, limiter: Limiter
    ) -> None:
        self.mode = options.mode
        self.webhook_secret = webhook_secret
        self._webhook_url = f"{options.base_url}{WEBHOOK_PATH}"
        self.restart_cap = options.start_retry_cap
        timeout = options.send_timeout
        builder = (
            Application.builder()
            .token(options.token)
            .base_url(f"{options.api_url}/bot")
            .base_file_url(f"{options.api_url}/file/bot")
            .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
            .connect_timeout(timeout)
            .read_timeout(timeout)
            .write_timeout(timeout)
            .pool_timeout(timeout)
            .get_updates_read_timeout(options.poll_timeout + timeout)
            .rate_limiter(SharedLimits(limiter))
        )
        if self.mode == "webhook":
            builder = builder.updater(None)
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self._add_handlers(ReviewFlow(reviews))
        self._poller: Poller | None = None
        if self.mode == "polling":
            assert self.application.updater is not None
            self._poller = Poller(
                self.application.updater,
                redis=redis,
                key=options.poll_lock_key,
                lock_ttl=options.poll_lock_ttl,
                poll_timeout=options.poll_timeout,
                allowed_updates=ALLOWED_UPDATES,
            )
        self.started = asyncio.Event()
        self._running = False
        # While Telegram refuses the token the bot waits, and senders learn it at once (not after a timeout).
        self.refused = False
        self._answered = asyncio.Event()  # started, or the token refused
        self._accepted = asyncio.Event()  # a probe saw the token taken

    @property
    def username(self) -> str | None:
        """The bot's @username (known once it has started)."""
        return self.application.bot.username if self.started.is_set() else None

    async def bot(self) -> ExtBot[Any]:
        """The running bot, for senders: waits until it has started; `InvalidToken` while Telegram refuses the token."""
        await self._answered.wait()
        if self.refused:
            raise InvalidToken("the bot token was refused")
        bot: ExtBot[Any] = self.application.bot
        return bot

    async def probe(self) -> None:
        """Ask Telegram about the token (getMe): `InvalidToken` while it refuses it; once it takes it, a bot
        refused at start starts."""
        await self.application.bot.get_me()
        self._accepted.set()

    async def process_update(self, data: dict[str, Any]) -> None:
        """An update from the webhook, onto the Application's queue (it is processed in the background)."""
        if not self.started.is_set():
            raise Unavailable("the bot is starting; Telegram will deliver this update again")
        try:
            update = Update.de_json(data, self.application.bot)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise Malformed(f"not a Telegram update: {exc}") from None
        await self.application.update_queue.put(update)

    async def close(self) -> None:
        await super().close()
        if self._poller is not None:
            await self._poller.close()
        if self._running:
            self._running = False
            await self.application.stop()
        with contextlib.suppress(TelegramError, RuntimeError):
            await self.application.shutdown()

    async def run(self) -> None:
        while True:
            try:
                await self._start()
                break
            except InvalidToken:
                # No blip to retry with backoff: the status messages wait (their channel is down, probed
                # by the senders), and so does the bot, trying again when a probe passes or every
                # start_retry_cap. PTB's message names the token: not logged.
                logger.error("Telegram refused the bot token: the bot waits (check ORDERCAST_TELEGRAM_TOKEN)")
                self.refused = True
                self._answered.set()
                self._accepted.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.restart_cap):
                        await self._accepted.wait()
                self.refused = False
                self._answered.clear()
        self.started.set()
        self._answered.set()
        logger.info("Telegram bot @%s started (%s)", self.application.bot.username, self.mode)
        if self._poller is not None:
            await self._poller.start()

    async def _start(self) -> None:
        await self.application.initialize()
        if not self._running:
            await self.application.start()
            self._running = True
        bot = self.application.bot
        english = Texts("en")
        await bot.set_my_commands([BotCommand(name, english.gettext(text)) for name, text in texts.COMMANDS])
        if self.mode == "webhook":
            await bot.set_webhook(
                url=self._webhook_url,
                secret_token=self.webhook_secret,
                allowed_updates=list(ALLOWED_UPDATES),
            )

    def _add_handlers(self, review: ReviewFlow) -> None:
        private = filters.ChatType.PRIVATE
        app = self.application
        app.add_handler(CommandHandler("start", linking.start, filters=private))
        app.add_handler(CommandHandler("stop", linking.stop, filters=private))
        app.add_handler(CommandHandler("orders", orders.orders, filters=private))
        app.add_handler(CommandHandler("order", orders.order, filters=private))
        app.add_handler(CommandHandler("help", orders.help_command, filters=private))
        app.add_handler(CommandHandler("review", review.review, filters=private))
        app.add_handler(CommandHandler("skip", review.skip, filters=private))
        app.add_handler(CallbackQueryHandler(review.stars, pattern=STARS_PATTERN))
        app.add_handler(MessageHandler(private & filters.TEXT & ~filters.COMMAND, review.text))
        app.add_handler(MessageHandler(private & filters.COMMAND, orders.unknown_command))
        app.add_error_handler(_log_error)


async def _log_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    logger.error("handling a Telegram update failed", exc_info=context.error)
