"""Admins and their API keys: who may act, disabling them, and resolving bearer keys to admins."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from ordercast.errors import Conflict, NotFound
from ordercast.events import format_time
from ordercast.ids import CROCKFORD, is_id
from ordercast.models import AdminSession, AdminUser, ApiKey, PushSubscription
from ordercast.services.logins import hash_password

SERVICE_ADMIN = "service"
API_KEY_PREFIX = "ock_"
# What a key's owner sees of it: `ock_` and 8 of its 43 random characters.
SHOWN_PREFIX = 12
# How stale `last_used_at` may get before a lookup writes it.
_TOUCH_EVERY = timedelta(seconds=60)


def hash_api_key(key: str) -> str:
    # API keys are 256 random bits, so a fast hash is enough; argon2 is for passwords.
    return hashlib.sha256(key.encode()).hexdigest()


async def ensure_admin(email: str, password: str | None) -> AdminUser:
    """Create the admin `email`, or set its password if it exists."""
    password_hash = await asyncio.to_thread(hash_password, password) if password else None
    user = await AdminUser.get_or_none(email=email)
    if user is None:
        try:
            return await AdminUser.create(email=email, password_hash=password_hash)
        except IntegrityError:
            user = await AdminUser.get(email=email)
    if password_hash is not None:
        user.password_hash = password_hash
        await user.save(update_fields=["password_hash"])
    return user


async def service_admin() -> AdminUser:
    """The built-in admin that API keys from `ORDERCAST_API_KEYS` act as."""
    return await ensure_admin(SERVICE_ADMIN, None)


async def list_admins() -> list[AdminUser]:
    return await AdminUser.all().order_by("email")


@dataclass(frozen=True, slots=True)
class Disabled:
    """What disabling an admin took away."""

    sessions: int
    api_keys: int
    push_subscriptions: int


async def _admin_named(email: str) -> AdminUser:
    if email == SERVICE_ADMIN:
        raise Conflict("the service admin can't be disabled: remove the keys from ORDERCAST_API_KEYS instead")
    user = await AdminUser.get_or_none(email=email)
    if user is None:
        raise NotFound(f"no admin {email!r}")
    return user


async def disable_admin(email: str) -> Disabled:
    """No more logins for the admin: their sessions end, their API keys and push subscriptions go."""
    user = await _admin_named(email)
    now = datetime.now(UTC)
    async with in_transaction() as conn:
        await AdminUser.filter(id=user.id).using_db(conn).update(disabled_at=now)
        return Disabled(
            sessions=await AdminSession.filter(user_id=user.id, ended_at__isnull=True)
            .using_db(conn)
            .update(ended_at=now),
            api_keys=await ApiKey.filter(user_id=user.id).using_db(conn).delete(),
            push_subscriptions=await PushSubscription.filter(user_id=user.id).using_db(conn).delete(),
        )


async def enable_admin(email: str) -> None:
    """The admin may log in again (what disabling ended stays ended)."""
    user = await _admin_named(email)
    await AdminUser.filter(id=user.id).update(disabled_at=None)


async def create_api_key(*, admin_email: str | None = None, name: str = "") -> str:
    """A new key for `admin_email` (default: the service admin); only its hash is stored."""
    if admin_email is None or admin_email == SERVICE_ADMIN:
        user = await service_admin()
    else:
        found = await AdminUser.get_or_none(email=admin_email)
        if found is None:
            raise NotFound(f"no admin {admin_email!r}")
        user = found
    return (await issue_api_key(user.id, name))[1]


async def issue_api_key(user_id: str, name: str) -> tuple[ApiKey, str]:
    """A new key for the admin: its record and the key itself (shown this once)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    record = await ApiKey.create(user_id=user_id, name=name, key_hash=hash_api_key(key), prefix=key[:SHOWN_PREFIX])
    return record, key


async def list_api_keys(user_id: str | None = None) -> list[ApiKey]:
    """The admin's keys (every admin's with no `user_id`), oldest first."""
    query = ApiKey.all() if user_id is None else ApiKey.filter(user_id=user_id)
    return await query.order_by("id")


def api_key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix or API_KEY_PREFIX,
        "created_at": format_time(key.created_at),
        "last_used_at": format_time(key.last_used_at) if key.last_used_at else None,
        "revocable": True,
    }


async def revoke_api_key(key_id: str, *, user_id: str | None = None) -> None:
    """Delete the key (of `user_id`, if given), or `NotFound`."""
    query = ApiKey.filter(id=key_id) if user_id is None else ApiKey.filter(id=key_id, user_id=user_id)
    if not is_id(key_id, "key") or not await query.delete():
        raise NotFound(f"no API key {key_id}")


@dataclass(frozen=True, slots=True)
class EnvKey:
    """A key from `ORDERCAST_API_KEYS`: listed for the service admin, revoked only by removing it there."""

    id: str
    prefix: str

    @classmethod
    def of(cls, key: str) -> EnvKey:
        # A stable id of the `key_…` shape, derived from the key's hash (the key has no record).
        value = int.from_bytes(hashlib.sha256(b"ordercast.env-key:" + key.encode()).digest()[:17], "big") >> 6
        body = "".join(CROCKFORD[(value >> (5 * i)) & 31] for i in reversed(range(26))).lower()
        # Never more than a quarter of it: these keys are chosen by the operator and may be short.
        prefix = key[: min(SHOWN_PREFIX, len(key) // 4)]
        return cls(id=f"key_{body}", prefix=prefix)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": "ORDERCAST_API_KEYS",
            "prefix": self.prefix,
            "created_at": None,
            "last_used_at": None,
            "revocable": False,
        }


class KeyRing:
    """Resolves bearer API keys to admin ids: environment keys in memory, the rest cached briefly."""

    def __init__(self, env_keys: list[str], service_admin_id: str, cache_ttl: float) -> None:
        self._env = {hash_api_key(key): service_admin_id for key in env_keys}
        self.env_keys = [EnvKey.of(key) for key in env_keys]
        self.service_admin_id = service_admin_id
        # digest -> (admin id or None, key id or None, expiry on the monotonic clock)
        self._cache: dict[str, tuple[str | None, str | None, float]] = {}
        self._ttl = cache_ttl
        # Bumped by every revocation here: a lookup that started before one doesn't fill the cache.
        self._generation = 0

    async def admin_for(self, key: str) -> str | None:
        digest = hash_api_key(key)
        if digest in self._env:
            return self._env[digest]
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[2] > now:
            return cached[0]
        generation = self._generation
        rows = await ApiKey.filter(key_hash=digest, user__disabled_at__isnull=True).values_list(
            "id", "user_id", "last_used_at"
        )
        key_id, user_id = (str(rows[0][0]), str(rows[0][1])) if rows else (None, None)
        if rows and (rows[0][2] is None or datetime.now(UTC) - rows[0][2] > _TOUCH_EVERY):
            await ApiKey.filter(id=key_id).update(last_used_at=datetime.now(UTC))
        if generation == self._generation:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (user_id, key_id, now + self._ttl)
        return user_id

    def forget(self, key_id: str) -> None:
        """The key was revoked: this process refuses it from now on (others within the cache's TTL)."""
        self._generation += 1
        for digest, (_, cached_id, _) in list(self._cache.items()):
            if cached_id == key_id:
                del self._cache[digest]

    def is_env_key(self, key_id: str) -> bool:
        return any(key.id == key_id for key in self.env_keys)
