"""Who is asking: API keys, admin session cookies (with the Origin check) and customer tokens."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from itsdangerous import BadSignature, TimestampSigner, URLSafeSerializer
from starlette.requests import HTTPConnection

from ordercast.errors import CsrfFailed, Forbidden, TokenExpired, Unauthenticated
from ordercast.services.accounts import KeyRing

SESSION_COOKIE = "ordercast_session"
CUSTOMER_TOKEN_PREFIX = "oct_"  # noqa: S105 — a prefix, not a secret
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Principal:
    """An admin (`user_id`) or a customer (`customer_id`), and how they proved it."""

    user_id: str | None = None
    customer_id: str | None = None
    via_cookie: bool = False

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
        try:
            payload = self._serializer.loads(token.removeprefix(CUSTOMER_TOKEN_PREFIX))
        except BadSignature:
            raise Unauthenticated("the customer token is invalid") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
            raise Unauthenticated("the customer token is invalid")
        if not isinstance(payload.get("e"), int) or payload["e"] <= time.time():
            raise TokenExpired()
        return str(payload["c"])


class Sessions:
    """The admin session cookie: the admin's id, signed and timestamped."""

    def __init__(self, secret_key: str, max_age: float) -> None:
        self._signer = TimestampSigner(secret_key, salt="ordercast.session")
        self.max_age = max_age

    def issue(self, user_id: str) -> str:
        return self._signer.sign(user_id).decode()

    def verify(self, cookie: str) -> str | None:
        try:
            return self._signer.unsign(cookie, max_age=int(self.max_age)).decode()
        except BadSignature:
            return None


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
                return Principal(customer_id=self._tokens.verify(credential))
            user_id = await self._keys.admin_for(credential)
            if user_id is None:
                raise Unauthenticated("the API key is not valid")
            return Principal(user_id=user_id)
        cookie = conn.cookies.get(SESSION_COOKIE)
        user_id = self._sessions.verify(cookie) if cookie else None
        if user_id is None:
            raise Unauthenticated()
        is_unsafe = conn.scope["type"] == "websocket" or conn.scope.get("method") not in _SAFE_METHODS
        if is_unsafe and not self.same_origin(conn):
            raise CsrfFailed()
        return Principal(user_id=user_id, via_cookie=True)

    async def admin(self, conn: HTTPConnection) -> Principal:
        principal = await self.principal(conn)
        if not principal.is_admin:
            raise Forbidden("customer tokens may only read their own orders and events")
        return principal

    def session_user(self, conn: HTTPConnection) -> str | None:
        cookie = conn.cookies.get(SESSION_COOKIE)
        return self._sessions.verify(cookie) if cookie else None

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
