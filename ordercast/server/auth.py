"""Who is asking: API keys, admin session cookies (with the Origin check) and customer tokens; what their
streams may do, and which of those credentials are over."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import urlsplit

from itsdangerous import BadSignature, TimestampSigner, URLSafeSerializer
from starlette.requests import HTTPConnection

from ordercast.errors import CsrfFailed, Forbidden, TokenExpired, Unauthenticated
from ordercast.ids import is_id
from ordercast.models import ApiKey
from ordercast.realtime.holders import Grant
from ordercast.services import sessions
from ordercast.services.accounts import EnvKey, KeyRing, hash_api_key

SESSION_COOKIE = "ordercast_session"
CUSTOMER_TOKEN_PREFIX = "oct_"  # noqa: S105 — a prefix, not a secret
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


CredentialKind = Literal["session", "api_key", "env_key", "customer_token"]


@dataclass(frozen=True, slots=True)
class Credential:
    """What a principal proved itself with: its streams are counted against it and end with it."""

    kind: CredentialKind
    # The session's id; for keys and tokens a SHA-256 of them (no secret is kept).
    id: str
    # When it stops being valid, a UNIX time (customer tokens).
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class Principal:
    """An admin (`user_id`) or a customer (`customer_id`), and how they proved it."""

    user_id: str | None = None
    customer_id: str | None = None
    via_cookie: bool = False
    # The session a cookie named (None for bearer credentials).
    session_id: str | None = None
    credential: Credential | None = None

    @property
    def is_admin(self) -> bool:
        return self.user_id is not None


class CustomerTokens:
    """Signed, scoped, expiring customer tokens, verified without a database query."""

    def __init__(self, secret_key: str) -> None:
        self._serializer = URLSafeSerializer(secret_key, salt="ordercast.customer-token")

    def issue(self, customer_id: str, ttl_seconds: int) -> tuple[str, datetime]:
        expires = int(time.time()) + ttl_seconds
        token = CUSTOMER_TOKEN_PREFIX + self._serializer.dumps({"c": customer_id, "e": expires})
        return token, datetime.fromtimestamp(expires, UTC)

    def verify(self, token: str) -> str:
        return self.read(token)[0]

    def read(self, token: str) -> tuple[str, int]:
        """The customer id and the expiry (a UNIX time) of a valid, unexpired token."""
        try:
            payload = self._serializer.loads(token.removeprefix(CUSTOMER_TOKEN_PREFIX))
        except BadSignature:
            raise Unauthenticated("the customer token is invalid") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            raise Unauthenticated("the customer token is invalid")
        if not isinstance(payload.get("e"), int) or payload["e"] <= time.time():
            raise TokenExpired()
        return str(payload["c"]), payload["e"]


@dataclass(frozen=True, slots=True)
class SessionRef:
    """The session a cookie names, and its admin."""

    id: str
    user_id: str


class Sessions:
    """Admin sessions: a signed cookie naming a session row, the rows looked up through a short cache.

    This process refuses a session it ended at once; other processes within `cache_ttl` seconds.
    """

    def __init__(self, secret_key: str, max_age: float, cache_ttl: float) -> None:
        self._signer = TimestampSigner(secret_key, salt="ordercast.session")
        self.max_age = max_age
        self._ttl = cache_ttl
        # session id -> (admin id, or None for a session that is over; expiry on the monotonic clock)
        self._cache: dict[str, tuple[str | None, float]] = {}
        # Bumped by every end here: a lookup that started before one doesn't fill the cache.
        self._generation = 0

    async def open(self, user_id: str, *, user_agent: str, ip: str) -> str:
        """A new session for the admin; the cookie value naming it."""
        session_id = await sessions.open_session(user_id, user_agent=user_agent, ip=ip)
        return self._signer.sign(session_id).decode()

    def session_id(self, cookie: str) -> str | None:
        """The id the cookie names, if its signature holds and it isn't older than `max_age`."""
        try:
            value = self._signer.unsign(cookie, max_age=int(self.max_age)).decode()
        except BadSignature:
            return None
        return value if is_id(value, "ses") else None

    async def verify(self, cookie: str) -> SessionRef | None:
        session_id = self.session_id(cookie)
        if session_id is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(session_id)
        if cached is None or cached[1] <= now:
            generation = self._generation
            user_id = await sessions.session_user(session_id, max_age=self.max_age)
            if generation == self._generation:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[session_id] = (user_id, now + self._ttl)
        else:
            user_id = cached[0]
        return SessionRef(session_id, user_id) if user_id is not None else None

    async def end(self, session_id: str, *, user_id: str | None = None) -> bool:
        """End one session (of `user_id`, if given); whether there was an active one."""
        ended = await sessions.end_session(session_id, user_id=user_id)
        self._forget(lambda cached_id, _: cached_id == session_id)
        return ended

    async def end_others(self, user_id: str, *, keep: str | None) -> int:
        """End every session of the admin but `keep`; how many."""
        ended = await sessions.end_sessions(user_id, keep=keep)
        self._forget(lambda cached_id, cached_user: cached_user == user_id and cached_id != keep)
        return ended

    def _forget(self, match: Callable[[str, str | None], bool]) -> None:
        self._generation += 1
        for session_id, (user_id, _) in list(self._cache.items()):
            if match(session_id, user_id):
                del self._cache[session_id]


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class Authenticator:
    """Resolves a request's credentials to a `Principal`, or raises 401/403."""

    def __init__(self, *, keys: KeyRing, tokens: CustomerTokens, sessions: Sessions, base_url: str) -> None:
        self._keys = keys
        self._tokens = tokens
        self._sessions = sessions
        self._origin = origin_of(base_url)

    async def principal(self, conn: HTTPConnection) -> Principal:
        credential = self._bearer(conn)
        if credential is not None:
            if credential.startswith(CUSTOMER_TOKEN_PREFIX):
                customer_id, expires = self._tokens.read(credential)
                token = Credential("customer_token", _digest(credential), expires_at=expires)
                return Principal(customer_id=customer_id, credential=token)
            user_id = await self._keys.admin_for(credential)
            if user_id is None:
                raise Unauthenticated("the API key is not valid")
            from_env = user_id == self._keys.service_admin_id and self._keys.is_env_key(EnvKey.of(credential).id)
            key = Credential("env_key" if from_env else "api_key", hash_api_key(credential))
            return Principal(user_id=user_id, credential=key)
        session = await self.session(conn)
        if session is None:
            raise Unauthenticated()
        is_unsafe = conn.scope["type"] == "websocket" or conn.scope.get("method") not in _SAFE_METHODS
        if is_unsafe and not self.same_origin(conn):
            raise CsrfFailed()
        return Principal(
            user_id=session.user_id,
            via_cookie=True,
            session_id=session.id,
            credential=Credential("session", session.id),
        )

    async def admin(self, conn: HTTPConnection) -> Principal:
        principal = await self.principal(conn)
        if not principal.is_admin:
            raise Forbidden("customer tokens may only read their own orders and events")
        return principal

    async def session(self, conn: HTTPConnection) -> SessionRef | None:
        """The active session the request's cookie names, if any."""
        cookie = conn.cookies.get(SESSION_COOKIE)
        return await self._sessions.verify(cookie) if cookie else None

    def same_origin(self, conn: HTTPConnection) -> bool:
        origin = conn.headers.get("origin")
        return origin is not None and origin.lower() == self._origin

    @staticmethod
    def _bearer(conn: HTTPConnection) -> str | None:
        header = conn.headers.get("authorization")
        if header is not None:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise Unauthenticated("use `Authorization: Bearer <key or token>`")
            return value.strip()
        # EventSource and WebSocket clients can't set headers; tokens may come in the query.
        if conn.scope["type"] == "websocket" or conn.scope.get("method") == "GET":
            token = conn.query_params.get("token")
            if token:
                return token
        return None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def stream_grant(principal: Principal, channel: str, *, per_credential: int, per_api_key: int | None) -> Grant:
    """What a stream opened by `principal` may do: read `channel`, as one of a capped number per
    credential (API keys: uncapped unless `per_api_key`), until the credential expires or ends."""
    credential = principal.credential
    if credential is None:
        return Grant(channel)
    is_key = credential.kind in ("api_key", "env_key")
    return Grant(
        channel,
        holder=credential,
        limit=per_api_key if is_key else per_credential,
        expires_at=credential.expires_at,
        # Keys from ORDERCAST_API_KEYS end only with the process; customer tokens only by expiring.
        revocable=credential.kind in ("session", "api_key"),
    )


async def ended_credentials(holders: list[Hashable], *, session_max_age: float) -> list[Hashable]:
    """Of the credentials holding streams, those that are over: sessions ended (or too old, or of a
    disabled admin) and API keys revoked. Asks the database, not the caches: a session ended by another
    process ends its streams here within one check interval."""
    over: list[Hashable] = []
    keys: dict[str, Credential] = {}
    for holder in holders:
        if not isinstance(holder, Credential):
            continue
        if holder.kind == "session":
            # One query per session: they are few (an admin's tabs share one), and "active" is defined once.
            if await sessions.session_user(holder.id, max_age=session_max_age) is None:
                over.append(holder)
        elif holder.kind == "api_key":
            keys[holder.id] = holder
    if keys:
        query = ApiKey.filter(key_hash__in=list(keys), user__disabled_at__isnull=True)
        live = {str(row[0]) for row in await query.values_list("key_hash")}
        over.extend(credential for digest, credential in keys.items() if digest not in live)
    return over
