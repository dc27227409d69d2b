"""Telegram over HTTP: the bot's webhook (secret-checked) and the customers' link tokens."""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from ordercast.bot.app import WEBHOOK_PATH
from ordercast.errors import Invalid, NotFound, TelegramOff, Unauthenticated, Unavailable
from ordercast.events import format_time
from ordercast.server.http import JSON, read_object
from ordercast.server.openapi import ApiRoute, Operation, in_header, in_path
from ordercast.server.runtime import runtime
from ordercast.services import schemas
from ordercast.services.customers import get_customer
from ordercast.services.telegram import create_link

SECRET_HEADER = "x-telegram-bot-api-secret-token"  # noqa: S105 — a header name


async def webhook(request: Request) -> Response:
    rt = runtime(request)
    bot = rt.telegram
    if bot is None or bot.mode != "webhook":
        raise NotFound("the bot does not take updates by webhook here")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode(), bot.webhook_secret.encode()):
        raise Unauthenticated("the Telegram webhook secret is missing or wrong")
    update = await read_object(request)
    if type(update.get("update_id")) is not int:
        raise Invalid.field("update_id", "must be an integer")
    await bot.process_update(update)
    return JSON({"ok": True})


async def post_telegram_link(request: Request) -> Response:
    rt = runtime(request)
    await rt.auth.admin(request)
    customer = await get_customer(request.path_params["customer_id"])
    if rt.telegram is None:
        raise TelegramOff("the Telegram bot is off: set ORDERCAST_TELEGRAM_TOKEN to link chats")
    username = rt.telegram.username
    if username is None:
        raise Unavailable("the Telegram bot is still starting", headers={"Retry-After": "5"})
    token, expires_at = await create_link(customer, ttl=rt.settings.telegram_link_ttl)
    return JSON(
        {"url": f"https://t.me/{username}?start={token}", "token": token, "expires_at": format_time(expires_at)},
        status_code=201,
    )


routes = [
    ApiRoute(
        "POST",
        WEBHOOK_PATH,
        webhook,
        Operation(
            "Telegram's webhook (checked by X-Telegram-Bot-Api-Secret-Token)",
            ok=schemas.WebhookAnswer,
            body=schemas.TelegramUpdate,
            params=[in_header("X-Telegram-Bot-Api-Secret-Token", {"type": "string"})],
            public=True,
        ),
    ),
    ApiRoute(
        "POST",
        "/api/v1/customers/{customer_id}/telegram-link",
        post_telegram_link,
        Operation(
            "Issue a single-use link that connects a Telegram chat to the customer",
            ok=schemas.TelegramLink,
            status=201,
            params=[in_path("customer_id", "the customer's id")],
        ),
    ),
]
