"""Send-rate limits: so many messages per second overall and per recipient, across processes with Redis.

Both limiters schedule sends like GCRA (a "theoretical arrival time" per key, no burst): a send waits
for the recipient's next slot first, and only then reserves the next overall slot, so a recipient
that must wait never holds a slot the others could use. A recipient's next slot is also counted from
when its last send was answered (`sent`): requests that spend different times on the way must not
arrive at Telegram closer together than its per-chat limit. A 429 from Telegram `pause`s every send
for its `retry_after` (as PTB's own AIORateLimiter does): the sends that respect our limits still
went too fast for Telegram, and the next ones would be refused as well. A sender that holds a
delivery's lease may wait only `within` seconds: a slot further away is not taken, and the sender
learns when it comes, to give the delivery back until then (waiting out a long 429 pause while
holding the lease let another process take the delivery over and send it too).
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

from redis.asyncio import Redis


class Limiter(Protocol):
    async def acquire(self, recipient: str, *, within: float = math.inf) -> float:
        """Return 0 when a message to `recipient` may be sent (the slot is then taken), having waited
        for it; or, when its slot is more than `within` seconds away, take nothing and return how far."""
        ...

    async def sent(self, recipient: str) -> None:
        """A send to `recipient` was answered: its next one waits a full interval from now."""
        ...

    async def pause(self, seconds: float) -> None:
        """Telegram asked to wait (429): no send to anyone for `seconds` from now."""
        ...


class MemoryLimiter:
    """The limits within one process (no Redis: there is only one process)."""

    def __init__(self, *, per_second: float, per_recipient_per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._recipient_interval = 1.0 / per_recipient_per_second
        self._next = 0.0
        self._next_for: dict[str, float] = {}

    def reserve(self, recipient: str, within: float = math.inf) -> tuple[bool, float]:
        """(reserved, seconds to wait): not reserved means the recipient's own slot is `seconds` away,
        or the overall one is and that is more than `within`."""
        now = time.monotonic()
        ready_at = self._next_for.get(recipient, 0.0)
        if ready_at > now:
            return False, ready_at - now
        slot = max(self._next, now)
        if slot - now > within:
            return False, slot - now
        self._next = slot + self._interval
        if len(self._next_for) > 10_000:
            self._next_for = {key: at for key, at in self._next_for.items() if at > now}
        self._next_for[recipient] = slot + self._recipient_interval
        return True, slot - now

    async def acquire(self, recipient: str, *, within: float = math.inf) -> float:
        deadline = time.monotonic() + within
        while True:
            left = max(0.0, deadline - time.monotonic())
            reserved, delay = self.reserve(recipient, left)
            if delay > left:
                return delay
            if delay > 0:
                await asyncio.sleep(delay)
            if reserved:
                return 0.0

    async def sent(self, recipient: str) -> None:
        ready_at = time.monotonic() + self._recipient_interval
        self._next_for[recipient] = max(self._next_for.get(recipient, 0.0), ready_at)

    async def pause(self, seconds: float) -> None:
        self._next = max(self._next, time.monotonic() + seconds)


# KEYS: the overall key, the recipient's key. ARGV: the overall interval, the recipient's interval, the
# longest wait for the overall slot that takes it (-1: any) (µs). Returns {reserved (0/1), µs to wait}.
# Times are Redis's own clock, shared by every process.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ready_at = tonumber(redis.call('GET', KEYS[2]) or '0')
if ready_at > now then return {0, ready_at - now} end
local slot = tonumber(redis.call('GET', KEYS[1]) or '0')
if slot < now then slot = now end
local within = tonumber(ARGV[3])
if within >= 0 and slot - now > within then return {0, slot - now} end
local interval, recipient_interval = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('SET', KEYS[1], string.format('%d', slot + interval), 'PX', math.ceil((slot + interval - now) / 1000) + 1000)
redis.call('SET', KEYS[2], string.format('%d', slot + recipient_interval), 'PX',
  math.ceil((slot + recipient_interval - now) / 1000) + 1000)
return {1, slot - now}
"""

# KEYS: the recipient's key. ARGV: the recipient's interval (µs).
_SENT = """
local t = redis.call('TIME')
local ready_at = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
if ready_at > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%d', ready_at), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
"""

# KEYS: the overall key. ARGV: the pause (µs). The next overall slot is no sooner than the pause's end.
_PAUSE = """
local t = redis.call('TIME')
local until_at = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[1])
if until_at > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], string.format('%d', until_at), 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
end
return 1
"""


class RedisLimiter:
    """The same limits shared by every process through Redis."""

    def __init__(self, redis: Redis, *, prefix: str, per_second: float, per_recipient_per_second: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._interval = max(1, round(1_000_000 / per_second))
        self._recipient_interval = max(1, round(1_000_000 / per_recipient_per_second))
        self._script = redis.register_script(_RESERVE)
        self._sent = redis.register_script(_SENT)
        self._pause = redis.register_script(_PAUSE)

    async def reserve(self, recipient: str, within: float = math.inf) -> tuple[bool, float]:
        limit = -1 if math.isinf(within) else max(0, round(within * 1_000_000))
        reserved, wait = await self._script(
            keys=[f"{self._prefix}all", f"{self._prefix}to:{recipient}"],
            args=[self._interval, self._recipient_interval, limit],
        )
        return bool(reserved), int(wait) / 1_000_000

    async def acquire(self, recipient: str, *, within: float = math.inf) -> float:
        deadline = time.monotonic() + within
        while True:
            left = max(0.0, deadline - time.monotonic())
            reserved, delay = await self.reserve(recipient, left)
            if delay > left:
                return delay
            if delay > 0:
                await asyncio.sleep(delay)
            if reserved:
                return 0.0

    async def sent(self, recipient: str) -> None:
        await self._sent(keys=[f"{self._prefix}to:{recipient}"], args=[self._recipient_interval])

    async def pause(self, seconds: float) -> None:
        await self._pause(keys=[f"{self._prefix}all"], args=[max(0, round(seconds * 1_000_000))])
