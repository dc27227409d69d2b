"""Admins, API keys and logins."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import time
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError

from ordercast.errors import NotFound, RateLimited
from ordercast.models import AdminUser, ApiKey, LoginFailure

SERVICE_ADMIN = "service"
API_KEY_PREFIX = "ock_"
_hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_api_key(key: str) -> str:
    # API keys are 256 random bits, so a fast hash is enough; argon2 is for passwords.
    return hashlib.sha256(key.encode()).hexdigest()


async def ensure_admin(email: str, password: str | None) -> AdminUser:
    """Create the admin `email`, or set its password if it exists."""
    password_hash = await asyncio.to_thread(_hasher.hash, password) if password else None
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


async def create_api_key(*, admin_email: str | None = None, name: str = "") -> str:
    """A new key for `admin_email` (default: the service admin); only its hash is stored."""
    if admin_email is None or admin_email == SERVICE_ADMIN:
        user = await service_admin()
    else:
        found = await AdminUser.get_or_none(email=admin_email)
        if found is None:
            raise NotFound(f"no admin {admin_email!r}")
        user = found
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    await ApiKey.create(user=user, name=name, key_hash=hash_api_key(key))
    return key


class KeyRing:
    """Resolves bearer API keys to admin ids: environment keys in memory, the rest cached briefly."""

    def __init__(self, env_keys: list[str], service_admin_id: str, cache_ttl: float) -> None:
        self._env = {hash_api_key(key): service_admin_id for key in env_keys}
        self._cache: dict[str, tuple[str | None, float]] = {}
        self._ttl = cache_ttl

    async def admin_for(self, key: str) -> str | None:
        digest = hash_api_key(key)
        if digest in self._env:
            return self._env[digest]
        cached = self._cache.get(digest)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        row = await ApiKey.get_or_none(key_hash=digest).values_list("user_id", flat=True)
        user_id = str(row) if row is not None else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (user_id, now + self._ttl)
        return user_id


async def login(email: str, password: str, *, max_failures: int, window: float) -> AdminUser | None:
    """The admin if the password is right; `RateLimited` after too many recent failures."""
    since = datetime.now(UTC) - timedelta(seconds=window)
    failures = await LoginFailure.filter(email=email, at__gte=since).count()
    if failures >= max_failures:
        raise RateLimited(int(window), "too many failed logins for this email; try again later")
    user = await AdminUser.get_or_none(email=email)
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None or stored is _DUMMY_HASH:
        await LoginFailure.create(email=email, at=datetime.now(UTC))
        await LoginFailure.filter(at__lt=since).delete()
        return None
    await LoginFailure.filter(email=email).delete()
    return user
