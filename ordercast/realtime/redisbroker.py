"""The Redis broker: positions, history (a stream per channel) and one pub/sub feed, shared by every process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from ordercast.errors import Unavailable
from ordercast.events import Event, Position
from ordercast.realtime.broker import FeedBuffer, FeedItem, Placed, Replay, Reset, ResetReason, Resumed, new_epoch
from ordercast.running import Loop, Running

logger = logging.getLogger("ordercast.realtime.redis")

# Creates a channel's epoch when it has none (first use, or Redis lost the data): a new epoch starts
# a new history, so whatever is left of an older one goes too.
_ENSURE_EPOCH = """
local function ensure_epoch(meta, stream, candidate)
  if redis.call('HSETNX', meta, 'epoch', candidate) == 1 then
    redis.call('HSET', meta, 'offset', 0)
    redis.call('DEL', stream)
  end
  return redis.call('HGET', meta, 'epoch')
end
local function oldest_id(ttl)
  local now = redis.call('TIME')
  local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ttl
  if oldest < 0 then oldest = 0 end
  return string.format('%d', oldest)
end
"""

# KEYS: seen, then meta and stream per channel.
# ARGV: ttl (ms), max length, feed channel, epoch candidate, record, then each channel's name.
# Returns (and publishes, before the record) the positions as JSON: {"<channel>": "<epoch>:<offset>"}.
_PUBLISH = (
    _ENSURE_EPOCH
    + """
local seen = redis.call('GET', KEYS[1])
if seen then return seen end
local ttl = tonumber(ARGV[1])
local oldest = oldest_id(ttl)
local positions = {}
for i = 1, (#KEYS - 1) / 2 do
  local meta, stream = KEYS[2 * i], KEYS[2 * i + 1]
  local epoch = ensure_epoch(meta, stream, ARGV[4])
  local offset = redis.call('HINCRBY', meta, 'offset', 1)
  redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*', 'o', offset, 'r', ARGV[5])
  redis.call('XTRIM', stream, 'MINID', '~', oldest)
  redis.call('PEXPIRE', stream, ttl)
  positions[i] = cjson.encode(ARGV[5 + i]) .. ':' .. cjson.encode(epoch .. ':' .. offset)
end
local placed = '{' .. table.concat(positions, ',') .. '}'
redis.call('SET', KEYS[1], placed, 'PX', ttl)
redis.call('PUBLISH', ARGV[3], placed .. '\\n' .. ARGV[5])
return placed
"""
)

# KEYS: meta, stream. ARGV: epoch candidate. Returns {epoch, offset}.
_CURRENT = (
    _ENSURE_EPOCH
    + """
local epoch = ensure_epoch(KEYS[1], KEYS[2], ARGV[1])
return {epoch, tonumber(redis.call('HGET', KEYS[1], 'offset'))}
"""
)

# KEYS: meta, stream. ARGV: epoch candidate, after epoch, after offset, history size, ttl (ms).
# Returns {epoch, offset, status, record…}: status `ok` with the records after `after`, or a reset reason.
# The stream is trimmed approximately (cheap); the count and age limits are applied exactly here.
_REPLAY = (
    _ENSURE_EPOCH
    + """
local epoch = ensure_epoch(KEYS[1], KEYS[2], ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 'offset'))
if ARGV[2] ~= epoch then return {epoch, last, 'epoch'} end
local after = tonumber(ARGV[3])
if after > last then return {epoch, last, 'invalid'} end
local missed = last - after
if missed == 0 then return {epoch, last, 'ok'} end
if missed > tonumber(ARGV[4]) then return {epoch, last, 'expired'} end
local entries = redis.call('XREVRANGE', KEYS[2], '+', oldest_id(tonumber(ARGV[5])), 'COUNT', missed)
if #entries < missed then return {epoch, last, 'expired'} end
local out = {epoch, last, 'ok'}
for i = #entries, 1, -1 do out[#out + 1] = entries[i][2][4] end
return out
"""
)

_UNAVAILABLE = "the broker (Redis) is unavailable"


class RedisBroker(Running):
    """`Broker` on Redis: one Lua script per operation, a stream per channel, one pub/sub channel.

    Needs Redis 6.2 or later (XTRIM MINID), not a cluster (a publish touches every channel of its event).
    """

    def __init__(
        self,
        url: str,
        *,
        history_size: int,
        history_ttl: float,
        prefix: str = "ordercast:",
        timeout: float = 5.0,
        health_interval: float = 5.0,
        reconnect_base: float = 0.1,
        reconnect_cap: float = 5.0,
        max_connections: int = 50,
        feed_size: int = 10_000,
    ) -> None:
        self._max_connections = max_connections
        self._url = url
        self._history_size = history_size
        self._ttl_ms = max(1, round(history_ttl * 1000))
        self._prefix = prefix
        self._timeout = timeout
        self._health_interval = health_interval
        self._reconnect_base = reconnect_base
        self._reconnect_cap = reconnect_cap
        self._feed_size = feed_size
        self.feed_channel = f"{prefix}feed"
        # The feed's connection is named so an operator (or a test) can find it in CLIENT LIST.
        self.feed_client_name = re.sub(r"[^\w:.{}-]", "_", prefix) + "feed"
        self._redis: Redis | None = None
        self._feed_redis: Redis | None = None
        self._publish: AsyncScript | None = None
        self._current: AsyncScript | None = None
        self._replay: AsyncScript | None = None

    async def start(self) -> None:
        if self._redis is not None:
            return
        common: dict[str, Any] = {"socket_timeout": self._timeout, "socket_connect_timeout": self._timeout}
        # Commands are retried (a script that ran but whose answer was lost is safe to run again:
        # publishing is idempotent, the others only read).
        # A blocking pool: redis-py's default pool fails at once when all its connections are busy,
        # which turned a burst of connecting clients into 503s; here a command waits (up to the timeout).
        pool = BlockingConnectionPool.from_url(
            self._url,
            max_connections=self._max_connections,
            timeout=self._timeout,
            retry=Retry(ExponentialWithJitterBackoff(cap=1.0, base=0.05), 2),
            **common,
        )
        self._redis = Redis.from_pool(pool)
        # The feed reconnects on its own schedule (with backoff), and must notice every reconnection:
        # redis-py's silent re-subscribe would hide the messages lost meanwhile.
        self._feed_redis = Redis.from_url(
            self._url,
            retry=Retry(NoBackoff(), 0, supported_errors=()),
            client_name=self.feed_client_name,
            **common,
        )
        self._publish = self._redis.register_script(_PUBLISH)
        self._current = self._redis.register_script(_CURRENT)
        self._replay = self._redis.register_script(_REPLAY)
        try:
            await self.ping()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        clients = (self._redis, self._feed_redis)
        self._redis = self._feed_redis = None
        for client in clients:
            if client is not None:
                await client.aclose()

    async def prune(self) -> int:
        """Nothing to do: every publish trims its stream by count and age, and a quiet stream expires."""
        return 0

    async def ping(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await self._client().ping()
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable(_UNAVAILABLE) from exc

    async def publish(self, event: Event) -> dict[str, Position]:
        channels = list(dict.fromkeys(event.channels))
        keys = [self._key("seen", event.id)]
        for channel in channels:
            keys += [self._key("meta", channel), self._key("stream", channel)]
        record = orjson.dumps(event.to_record())
        args: list[str | bytes | int] = [self._ttl_ms, self._history_size, self.feed_channel, new_epoch(), record]
        placed = await self._run(self._publish, keys, [*args, *channels])
        return _positions(placed)

    async def current(self, channel: str) -> Position:
        epoch, offset = await self._run(self._current, self._channel_keys(channel), [new_epoch()])
        return Position(_text(epoch), int(offset))

    async def replay(self, channel: str, after: Position) -> Replay | Reset:
        args: list[str | int] = [new_epoch(), after.epoch, after.offset, self._history_size, self._ttl_ms]
        epoch, last, status, *records = await self._run(self._replay, self._channel_keys(channel), args)
        current = Position(_text(epoch), int(last))
        reason = _text(status)
        if reason != "ok":
            return Reset(_reset_reason(reason), current)
        first = current.offset - len(records) + 1
        return [
            (Position(current.epoch, first + index), Event.from_record(orjson.loads(record)))
            for index, record in enumerate(records)
        ]

    async def feed(self) -> AsyncGenerator[FeedItem, None]:
        # Its own loop reads the subscription into a bounded buffer: a lost connection is subscribed
        # again (with backoff) like any failed loop, and a reader far behind gets `Resumed`.
        buffer = FeedBuffer(self._feed_size)
        async with _FeedSubscription(self, buffer):
            while (item := await buffer.get()) is not None:
                yield item

    def _key(self, kind: str, name: str) -> str:
        return f"{self._prefix}{kind}:{name}"

    def _channel_keys(self, channel: str) -> list[str]:
        return [self._key("meta", channel), self._key("stream", channel)]

    def _client(self) -> Redis:
        if self._redis is None:
            raise Unavailable("the broker is not started")
        return self._redis

    def _feed_client(self) -> Redis:
        if self._feed_redis is None:
            raise Unavailable("the broker is not started")
        return self._feed_redis

    async def _run(self, script: AsyncScript | None, keys: Sequence[str], args: Sequence[str | bytes | int]) -> Any:
        if script is None:
            raise Unavailable("the broker is not started")
        try:
            # The socket timeout bounds each read; this bounds the whole call, retries included.
            async with asyncio.timeout(self._timeout * 3):
                return await script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            raise Unavailable(_UNAVAILABLE) from exc


class _FeedSubscription(Loop):
    """One feed's pub/sub subscription, into the feed's buffer; subscribed again after a backoff when it is lost."""

    name = "ordercast.realtime.redis.feed"
    # A lost connection is routine: the feed says `Resumed` once subscribed again, and the hub reads
    # what was placed meanwhile from history.
    expected_failures = (RedisError, OSError, TimeoutError, Unavailable)

    def __init__(self, broker: RedisBroker, buffer: FeedBuffer) -> None:
        self.restart_base = broker._reconnect_base
        self.restart_cap = broker._reconnect_cap
        self._broker = broker
        self._buffer = buffer

    async def run(self) -> None:
        broker = self._broker
        pubsub = broker._feed_client().pubsub()
        try:
            await pubsub.subscribe(broker.feed_channel)
            silent = 0
            while True:
                message = await pubsub.get_message(timeout=broker._health_interval)
                if message is None:
                    # Nothing heard for a while: a PING must come back, else the connection is dead
                    # (a vanished peer sends no RST; only a timeout tells).
                    silent += 1
                    if silent > 1:
                        raise TimeoutError("no answer from Redis on the feed connection")
                    await pubsub.ping()
                    continue
                silent = 0
                kind = message["type"]
                if kind == b"message" or kind == "message":
                    for placed in _placed(message["data"]):
                        self._buffer.put(placed)
                elif kind == b"subscribe" or kind == "subscribe":
                    # Redis confirms the subscription only once it is in place, so everything placed
                    # from here on reaches this feed; the hub reads what came before from history.
                    self.succeeded()
                    self._buffer.put(Resumed())
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


_REASONS: dict[str, ResetReason] = {"expired": "expired", "epoch": "epoch", "invalid": "invalid"}


def _reset_reason(reason: str) -> ResetReason:
    try:
        return _REASONS[reason]
    except KeyError:
        raise ValueError(f"unexpected replay status {reason!r}") from None


def _positions(encoded: bytes | str) -> dict[str, Position]:
    positions: dict[str, Position] = {}
    for channel, text in orjson.loads(encoded).items():
        position = Position.parse(text)
        if position is None:
            raise ValueError(f"malformed position {text!r} from Redis")
        positions[channel] = position
    return positions


def _placed(data: bytes | str) -> list[Placed]:
    raw = data.encode() if isinstance(data, str) else data
    head, _, record = raw.partition(b"\n")
    event = Event.from_record(orjson.loads(record))
    return [Placed(channel, position, event) for channel, position in _positions(head).items()]
