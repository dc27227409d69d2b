"""Password logins and changes: argon2 a few at a time, failures counted per (email, client IP) and per IP."""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ordercast.errors import Forbidden, RateLimited
from ordercast.models import AdminUser, LoginFailure

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a wrong email costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


class Passwords:
    """argon2 (~190 ms of CPU and 64 MiB each), at most `concurrency` at once in this process."""

    def __init__(self, concurrency: int) -> None:
        self._slots = asyncio.Semaphore(concurrency)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        # A flood is refused, not queued: queued hashes would hold CPU and memory long after the
        # clients gave up, and the real admin's login would wait behind them.
        if self._slots.locked():
            raise RateLimited(1, "too many logins at once; try again in a moment")
        async with self._slots:
            yield

    @staticmethod
    async def verify(stored: str, password: str) -> bool:
        """Whether `password` matches `stored` (call within `slot()`)."""
        try:
            return await asyncio.to_thread(_hasher.verify, stored, password)
        except (VerificationError, InvalidHashError):
            return False

    @staticmethod
    async def hash(password: str) -> str:
        """The argon2 hash of `password` (call within `slot()`)."""
        return await asyncio.to_thread(_hasher.hash, password)


class Logins:
    """Logins judged at most `per_pair` times per (email, IP) and `per_ip` times per IP per `window` s."""

    def __init__(self, passwords: Passwords, *, per_pair: int, per_ip: int, window: float) -> None:
        self.passwords = passwords
        self._per_pair = per_pair
        self._per_ip = per_ip
        self._window = window

    async def login(self, email: str, password: str, ip: str) -> AdminUser | None:
        """The admin if the password is right (and they aren't disabled); `RateLimited` past the limits."""
        async with self.passwords.slot():
            await self._admit(email, ip)
            user = await AdminUser.get_or_none(email=email)
            stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
            right = await self.passwords.verify(stored, password)
        if user is None or stored is _DUMMY_HASH or not right or user.disabled_at is not None:
            await self._prune()
            return None
        await LoginFailure.filter(email=email, ip=ip).delete()
        return user

    async def change_password(self, user_id: str, current: str, new: str, ip: str) -> None:
        """Set the admin's password to `new` if `current` is right (a wrong one counts as a failed login)."""
        user = await AdminUser.get(id=user_id)
        if user.password_hash is None:
            raise Forbidden("this admin has no password: it acts only through API keys")
        async with self.passwords.slot():
            await self._admit(user.email, ip)
            right = await self.passwords.verify(user.password_hash, current)
            new_hash = await self.passwords.hash(new) if right else None
        if new_hash is None:
            await self._prune()
            raise Forbidden("the current password is wrong")
        await LoginFailure.filter(email=user.email, ip=ip).delete()
        await AdminUser.filter(id=user_id).update(password_hash=new_hash)

    async def _admit(self, email: str, ip: str) -> None:
        # Written first, counted after: parallel guesses each see the others' rows, so no more than
        # the limit are ever judged (counting first, then writing, let every parallel guess through).
        now = datetime.now(UTC)
        since = now - timedelta(seconds=self._window)
        attempt = await LoginFailure.create(email=email, ip=ip, at=now)
        pair = LoginFailure.filter(email=email, ip=ip, at__gte=since)
        from_ip = LoginFailure.filter(ip=ip, at__gte=since)
        if await pair.count() > self._per_pair:
            blocked, message = pair, "too many failed logins for this email from your address; try again later"
        elif await from_ip.count() > self._per_ip:
            blocked, message = from_ip, "too many failed logins from your address; try again later"
        else:
            return
        # A refused attempt isn't judged, so it isn't kept as a failure either.
        await attempt.delete()
        oldest = await blocked.order_by("at").first().values_list("at", flat=True)
        frees_at = oldest + timedelta(seconds=self._window) if isinstance(oldest, datetime) else now
        raise RateLimited(max(1, math.ceil((frees_at - datetime.now(UTC)).total_seconds())), message)

    async def _prune(self) -> None:
        await LoginFailure.filter(at__lt=datetime.now(UTC) - timedelta(seconds=self._window)).delete()
