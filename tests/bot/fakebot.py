"""A fake Telegram Bot API: a real HTTP server in the test process that speaks Telegram's protocol.

Requests go to `/bot<token>/<method>` as form fields (what python-telegram-bot sends: strings as
they are, everything else JSON-encoded) or JSON; answers are `{"ok": true, "result": …}` or
`{"ok": false, "error_code", "description", "parameters"?}`. Updates reach the bot by `getUpdates`
long polling (with offsets, and 409 for a second poller or while a webhook is set) or by POSTs to the
webhook with its secret header, retried until answered 2xx, as Telegram does.

Users are simulated with `say` (a message, commands with their `bot_command` entity) and `press`
(an inline button). Every successful `sendMessage` is recorded for assertions. Per chat, a test can
make sends fail (403 blocked, 400, 429 with `retry_after`, 502), or hold them unanswered; with
`enforce_limits`, sends beyond Telegram's rate limits get 429s, as Telegram's flood control does.
With `refusing`, every request gets 401 Unauthorized, as when the bot's token is revoked.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import running_fake, wait_for

TOKEN = "7000000001:AAHfakeTokenForOrdercastTests_0123456"
BOT_USER = {"id": 7000000001, "is_bot": True, "first_name": "Ordercast Shop", "username": "ordercast_test_bot"}
_JSON_FIELDS = {"reply_markup", "commands", "allowed_updates", "link_preview_options", "entities", "scope"}
_INT_FIELDS = {"chat_id", "message_id", "offset", "limit", "timeout", "max_connections"}


@dataclass
class Sent:
    """A message the bot sent (Telegram accepted it)."""

    chat_id: int
    message_id: int
    text: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    at: float  # time.monotonic() when it arrived
    wall: float = 0.0  # time.time() when it arrived (to compare with event times)

    def buttons(self) -> list[dict[str, Any]]:
        if not self.reply_markup:
            return []
        return [button for row in self.reply_markup.get("inline_keyboard", []) for button in row]


@dataclass
class Failure:
    """What the next send to a chat gets instead of success."""

    status: int
    description: str
    retry_after: int | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


BLOCKED = Failure(403, "Forbidden: bot was blocked by the user")
CHAT_NOT_FOUND = Failure(400, "Bad Request: chat not found")
TOO_LONG = Failure(400, "Bad Request: message is too long")
BAD_GATEWAY = Failure(502, "Bad Gateway")


def flood(seconds: int) -> Failure:
    return Failure(429, f"Too Many Requests: retry after {seconds}", retry_after=seconds)


class _FloodControl:
    """Telegram-like limits: at most `rate` messages in any second overall, and per chat at least
    1/`chat_rate` s between messages; `tolerance` seconds of network jitter are allowed for both."""

    def __init__(self, rate: float, chat_rate: float, tolerance: float) -> None:
        self._rate = rate
        self._gap = 1 / chat_rate - tolerance
        self._window = 1 - tolerance
        self._recent: deque[float] = deque()
        self._last: dict[int, float] = {}
        self.refused = {"bot": 0, "chat": 0}  # 429s by the limit that refused

    def wait(self, chat_id: int, now: float) -> float:
        """0 if a message to `chat_id` may go now (and it is counted), else how long until it may."""
        while self._recent and self._recent[0] <= now - self._window:
            self._recent.popleft()
        chat_wait = self._last.get(chat_id, -math.inf) + self._gap - now
        bot_wait = self._recent[0] + self._window - now if len(self._recent) >= self._rate else 0.0
        if chat_wait > 0 or bot_wait > 0:
            self.refused["chat" if chat_wait > 0 else "bot"] += 1
            return max(chat_wait, bot_wait)
        self._recent.append(now)
        self._last[chat_id] = now
        return 0.0


@dataclass
class FakeBotAPI:
    token: str = TOKEN
    enforce_limits: bool = False
    global_rate: float = 30.0
    chat_rate: float = 1.0
    tolerance: float = 0.05
    url: str = ""
    sent: list[Sent] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    commands: list[dict[str, Any]] | None = None
    webhook: dict[str, Any] | None = None
    webhook_answers: list[int] = field(default_factory=list)
    throttled: int = 0
    conflicts: list[float] = field(default_factory=list)
    callback_answers: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[int, deque[Failure]] = field(default_factory=lambda: defaultdict(deque))
    broken: dict[int, Failure] = field(default_factory=dict)
    held: dict[int, asyncio.Event] = field(default_factory=dict)
    holding: list[int] = field(default_factory=list)  # chats with a send waiting in `held`
    refusing: bool = False
    refused: list[str] = field(default_factory=list)  # the methods called with a token refused

    def __post_init__(self) -> None:
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._arrived = asyncio.Condition()
        self._poller: tuple[asyncio.Future[None], Request] | None = None
        self._pusher: asyncio.Task[None] | None = None
        self.flood_control = _FloodControl(self.global_rate, self.chat_rate, self.tolerance)
        self.app = Starlette(routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])])

    # --- what tests do -------------------------------------------------------------------------

    async def say(self, chat_id: int, text: str, *, first_name: str = "Ada", language: str = "en") -> dict[str, Any]:
        """The user of `chat_id` writes `text` to the bot (a command gets its `bot_command` entity)."""
        user = {"id": chat_id, "is_bot": False, "first_name": first_name, "language_code": language}
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": first_name},
            "from": user,
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        return await self._push({"message": message})

    async def press(self, chat_id: int, message: Sent, data: str) -> dict[str, Any]:
        """The user presses the inline button with callback `data` under the bot's `message`."""
        user = {"id": chat_id, "is_bot": False, "first_name": "Ada", "language_code": "en"}
        query = {
            "id": str(next(self._message_ids)),
            "from": user,
            "chat_instance": str(chat_id),
            "data": data,
            "message": self._message(message.chat_id, message.message_id, message.text, message.reply_markup),
        }
        return await self._push({"callback_query": query})

    def messages(self, chat_id: int) -> list[Sent]:
        return [sent for sent in self.sent if sent.chat_id == chat_id]

    def texts(self, chat_id: int) -> list[str]:
        return [sent.text for sent in self.messages(chat_id)]

    async def wait_messages(self, chat_id: int, count: int, timeout: float = 10) -> list[Sent]:
        """The first `count` messages to `chat_id`, once that many have arrived."""
        await wait_for(
            lambda: len(self.messages(chat_id)) >= count,
            timeout,
            f"{count} message(s) to chat {chat_id} (got {self.texts(chat_id)})",
        )
        return self.messages(chat_id)[:count]

    async def reply_to(self, chat_id: int, text: str, timeout: float = 10) -> Sent:
        """Say `text` and return the bot's next message to the chat."""
        before = len(self.messages(chat_id))
        await self.say(chat_id, text)
        return (await self.wait_messages(chat_id, before + 1, timeout))[before]

    def fail_next(self, chat_id: int, *failures: Failure) -> None:
        self.failures[chat_id].extend(failures)

    def hold(self, chat_id: int) -> None:
        """Sends to `chat_id` arrive (and count as sent) but get no answer until `release`."""
        self.held[chat_id] = asyncio.Event()

    def release(self, chat_id: int) -> None:
        self.held.pop(chat_id).set()

    def called(self, method: str) -> list[dict[str, Any]]:
        return [params for name, params in self.calls if name == method]

    # Bot API methods are `_m_<name>`, named as Telegram names them.
    # --- the Bot API ---------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> Response:
        if request.path_params["token"] != self.token or self.refusing:
            self.refused.append(request.path_params["method"])
            return _answer({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        params = await _params(request)
        method = request.path_params["method"]
        self.calls.append((method, params))
        if method == "getUpdates":
            result = await self._get_updates(params, request)
        else:
            handler = getattr(self, f"_m_{method}", None)
            if handler is None:
                return _answer({"ok": False, "error_code": 404, "description": "Not Found: method not found"}, 404)
            result = await handler(params)
        if isinstance(result, Failure):
            return _answer(result.body(), result.status)
        return _answer({"ok": True, "result": result})

    async def _m_getMe(self, params: dict[str, Any]) -> Any:
        return {**BOT_USER, "can_join_groups": False, "can_read_all_group_messages": False}

    async def _m_setMyCommands(self, params: dict[str, Any]) -> Any:
        self.commands = params["commands"]
        return True

    async def _m_setWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = params
        if self._pusher is None:
            self._pusher = asyncio.create_task(self._push_to_webhook())
        async with self._arrived:
            self._arrived.notify_all()
        return True

    async def _m_deleteWebhook(self, params: dict[str, Any]) -> Any:
        self.webhook = None
        return True

    async def _get_updates(self, params: dict[str, Any], request: Request) -> Any:
        if self.webhook:
            return Failure(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook")
        if self._poller is not None and not self._poller[0].done():
            # Telegram ends the older long poll: only one getUpdates at a time per bot. A poll whose
            # client has gone (it stopped, or was killed) is no conflict, just a leftover.
            older, older_request = self._poller
            if not await older_request.is_disconnected():
                self.conflicts.append(time.monotonic())
            older.set_result(None)
        offset = params.get("offset")
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and params.get("timeout"):
            poller = asyncio.get_running_loop().create_future()
            self._poller = (poller, request)
            waiter = asyncio.ensure_future(self._wait_for_update())
            done, _ = await asyncio.wait({poller, waiter}, timeout=params["timeout"], return_when="FIRST_COMPLETED")
            waiter.cancel()
            if poller in done and not self._updates:
                return Failure(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
                )
        return self._updates[: params.get("limit") or 100]

    async def _wait_for_update(self) -> None:
        async with self._arrived:
            await self._arrived.wait_for(lambda: bool(self._updates))

    async def _m_sendMessage(self, params: dict[str, Any]) -> Any:
        chat_id = params["chat_id"]
        if chat_id in self.broken:
            return self.broken[chat_id]
        queued = self.failures.get(chat_id)
        if queued:
            return queued.popleft()
        if self.enforce_limits:
            wait = self.flood_control.wait(chat_id, time.monotonic())
            if wait > 0:
                self.throttled += 1
                return flood(max(1, math.ceil(wait)))
        message_id = next(self._message_ids)
        text, mode, markup = params["text"], params.get("parse_mode"), params.get("reply_markup")
        self.sent.append(Sent(chat_id, message_id, text, mode, markup, time.monotonic(), time.time()))
        hold = self.held.get(chat_id)
        if hold is not None:
            self.holding.append(chat_id)
            await hold.wait()
        return self._message(chat_id, message_id, params["text"], params.get("reply_markup"))

    async def _m_answerCallbackQuery(self, params: dict[str, Any]) -> Any:
        self.callback_answers.append(params)
        return True

    async def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> Any:
        original = next((s for s in self.sent if s.message_id == params.get("message_id")), None)
        if original is None:
            return Failure(400, "Bad Request: message to edit not found")
        original.reply_markup = params.get("reply_markup")
        return self._message(original.chat_id, original.message_id, original.text, original.reply_markup)

    # --- plumbing ------------------------------------------------------------------------------

    def _message(self, chat_id: int, message_id: int, text: str, markup: dict[str, Any] | None) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Ada"},
            "from": BOT_USER,
            "text": text,
        }
        if markup:
            message["reply_markup"] = markup
        return message

    async def _push(self, body: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **body}
        async with self._arrived:
            self._updates.append(update)
            self._arrived.notify_all()
        return update

    async def _push_to_webhook(self) -> None:
        """Deliver queued updates to the webhook one at a time, retrying until answered 2xx."""
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                async with self._arrived:
                    await self._arrived.wait_for(lambda: bool(self._updates and self.webhook))
                webhook = self.webhook
                assert webhook is not None
                update = self._updates[0]
                headers = {"X-Telegram-Bot-Api-Secret-Token": webhook.get("secret_token", "")}
                try:
                    response = await client.post(webhook["url"], json=update, headers=headers)
                    self.webhook_answers.append(response.status_code)
                    delivered = response.is_success
                except httpx.HTTPError:
                    delivered = False
                if delivered:
                    self._updates.remove(update)
                else:
                    await asyncio.sleep(0.1)  # Telegram, too, delivers an update again after a pause

    async def close(self) -> None:
        for event in self.held.values():
            event.set()
        if self._poller is not None and not self._poller[0].done():
            self._poller[0].set_result(None)
        if self._pusher is not None:
            self._pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pusher


async def _params(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.body()
        return dict(orjson.loads(body)) if body else {}
    if content_type and not content_type.startswith("application/x-www-form-urlencoded"):
        raise AssertionError(f"the fake Bot API takes form-encoded or JSON requests, not {content_type}")
    params: dict[str, Any] = {}
    for name, value in parse_qsl((await request.body()).decode(), keep_blank_values=True):
        if name in _JSON_FIELDS:
            params[name] = orjson.loads(value)
        elif name in _INT_FIELDS:
            params[name] = int(value)
        else:
            params[name] = value
    for name, value in request.query_params.items():
        params.setdefault(name, int(value) if name in _INT_FIELDS else value)
    return params


def _answer(body: dict[str, Any], status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


@contextlib.asynccontextmanager
async def running(fake: FakeBotAPI) -> AsyncIterator[FakeBotAPI]:
    """Serve `fake` on a free port in this event loop (its `url` is the Bot API root)."""
    async with running_fake(fake, "the fake Bot API") as served:
        yield served
