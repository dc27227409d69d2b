"""A fake Web Push service: a real HTTP server in the test process that checks pushes as a browser
vendor's would (Mozilla's autopush, Google's FCM).

It hands out subscriptions as a browser would (`subscribe(application_server_key)` returns the
`PushSubscription.toJSON()` a page would post, bound to that VAPID key, with a P-256 key pair and an
auth secret only the "browser" knows). A push must carry `Authorization: vapid t=<JWT>,k=<key>`: an
ES256 JWT signed by `k`, `k` the key the subscription was made for, `aud` this service's origin,
`exp` in the future and at most 24 hours away, `sub` a mailto: or https: URI; a `TTL` header;
`Content-Encoding: aes128gcm` and a body of at most 4096 bytes, which it decrypts with the
subscription's private key and auth secret (RFC 8291). Accepted pushes are recorded, decrypted, for
assertions. A test can make the next pushes to a subscription fail (404, 410, 429 with Retry-After,
500, 413, a redirect, …), or hold them unanswered.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import secrets
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.conftest import running_fake, wait_for

MAX_BODY = 4096
MAX_EXPIRY = 24 * 3600
_TOPIC = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_URGENCY = {"very-low", "low", "normal", "high"}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Push:
    """A push the service accepted, decrypted."""

    token: str  # which subscription
    payload: dict[str, Any]
    ttl: int
    urgency: str | None
    topic: str | None
    jwt: str
    claims: dict[str, Any]
    at: float  # time.monotonic()
    wall: float  # time.time(), to compare with event times

    @property
    def title(self) -> str:
        return str(self.payload["title"])

    @property
    def body(self) -> str:
        return str(self.payload["body"])


@dataclass
class Failure:
    status: int
    retry_after: str | None = None
    text: str = ""
    headers: dict[str, str] = field(default_factory=dict)


GONE = Failure(410, text="push subscription has unsubscribed or expired")
NOT_FOUND = Failure(404, text="no such subscription")
SERVER_ERROR = Failure(500, text="internal error")


def throttled(seconds: int | str) -> Failure:
    return Failure(429, retry_after=str(seconds), text="too many requests")


@dataclass
class _Subscription:
    token: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str
    active: bool = True


@dataclass
class FakePushService:
    url: str = ""
    pushes: list[Push] = field(default_factory=list)
    # Refused requests: (status, why), for assertions that nothing was refused by accident.
    refused: list[tuple[int, str]] = field(default_factory=list)
    failures: dict[str, deque[Failure]] = field(default_factory=lambda: defaultdict(deque))
    # Seconds to wait before answering a subscription's pushes (a slow or stuck service).
    delays: dict[str, float] = field(default_factory=dict)
    held: dict[str, asyncio.Event] = field(default_factory=dict)
    # Requests that reached each subscription's endpoint, whatever the answer.
    arrivals: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self._subscriptions: dict[str, _Subscription] = {}
        self._arrived = asyncio.Condition()
        self.app = Starlette(routes=[Route("/push/{token}", self._endpoint, methods=["POST"])])

    # The browser's side.

    def subscribe(self, application_server_key: str) -> dict[str, Any]:
        """A new subscription bound to `application_server_key`, as `PushSubscription.toJSON()`."""
        token = secrets.token_urlsafe(24)
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        self._subscriptions[token] = _Subscription(token, private_key, auth, application_server_key)
        public = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.url}/push/{token}",
            "expirationTime": None,
            "keys": {"p256dh": b64url(public), "auth": b64url(auth)},
        }

    def unsubscribe(self, subscription: dict[str, Any]) -> None:
        """The user revoked it in the browser: the service answers 410 from now on."""
        self._subscriptions[token_of(subscription)].active = False

    # The test's side.

    def fail_next(self, subscription: dict[str, Any], *failures: Failure) -> None:
        self.failures[token_of(subscription)].extend(failures)

    def hold(self, subscription: dict[str, Any]) -> None:
        self.held[token_of(subscription)] = asyncio.Event()

    def release(self, subscription: dict[str, Any]) -> None:
        self.held.pop(token_of(subscription)).set()

    def received(self, subscription: dict[str, Any]) -> list[Push]:
        token = token_of(subscription)
        return [push for push in self.pushes if push.token == token]

    async def wait_pushes(self, subscription: dict[str, Any], count: int, timeout: float = 10) -> list[Push]:
        """The subscription's first `count` pushes, once they have arrived."""

        async def arrived() -> list[Push] | None:
            pushes = self.received(subscription)
            return pushes[:count] if len(pushes) >= count else None

        result: list[Push] = await wait_for(arrived, timeout, f"{count} pushes to {token_of(subscription)[:8]}")
        return result

    # The service.

    async def _endpoint(self, request: Request) -> Response:
        token = request.path_params["token"]
        self.arrivals[token] += 1
        subscription = self._subscriptions.get(token)
        if subscription is None:
            return self._refuse(404, "no such subscription")
        body = await request.body()
        problem = self._check(request, subscription, body)
        if problem is not None:
            return self._refuse(*problem)
        if token in self.held:
            await self.held[token].wait()
        if token in self.delays:
            await asyncio.sleep(self.delays[token])
        if not subscription.active:
            return Response(GONE.text, status_code=410)
        if self.failures[token]:
            failure = self.failures[token].popleft()
            headers = {"Retry-After": failure.retry_after} if failure.retry_after is not None else {}
            return Response(failure.text, status_code=failure.status, headers={**headers, **failure.headers})
        try:
            plain = http_ece.decrypt(body, private_key=subscription.private_key, auth_secret=subscription.auth)
            payload = json.loads(plain)
        except Exception as error:  # a browser would drop it: the sender broke the encryption
            return self._refuse(400, f"cannot decrypt: {error!r}")
        jwt = request.headers["authorization"].split("t=", 1)[1].split(",", 1)[0]
        push = Push(
            token=token,
            payload=payload,
            ttl=int(request.headers["ttl"]),
            urgency=request.headers.get("urgency"),
            topic=request.headers.get("topic"),
            jwt=jwt,
            claims=json.loads(unb64url(jwt.split(".")[1])),
            at=time.monotonic(),
            wall=time.time(),
        )
        async with self._arrived:
            self.pushes.append(push)
            self._arrived.notify_all()
        return Response(status_code=201, headers={"Location": f"{self.url}/message/{secrets.token_hex(8)}"})

    def _check(self, request: Request, subscription: _Subscription, body: bytes) -> tuple[int, str] | None:
        """What a vendor checks before accepting a push: the VAPID token, TTL, the encoding, the size."""
        authorization = request.headers.get("authorization", "")
        match = re.fullmatch(r"vapid t=([A-Za-z0-9_.-]+),\s*k=([A-Za-z0-9_-]+)", authorization)
        if match is None:
            return 401, f"Authorization is not `vapid t=…,k=…`: {authorization!r}"
        token, key = match.groups()
        if key != subscription.application_server_key:
            return 403, "the VAPID key is not the one the subscription was made for"
        problem = self._check_jwt(token, key)
        if problem is not None:
            return 401, problem
        ttl = request.headers.get("ttl")
        if ttl is None or not ttl.isdigit():
            return 400, f"a TTL header (seconds) is required, got {ttl!r}"
        if request.headers.get("content-encoding") != "aes128gcm":
            return 400, f"Content-Encoding must be aes128gcm, got {request.headers.get('content-encoding')!r}"
        urgency = request.headers.get("urgency")
        if urgency is not None and urgency not in _URGENCY:
            return 400, f"bad Urgency {urgency!r}"
        topic = request.headers.get("topic")
        if topic is not None and not _TOPIC.fullmatch(topic):
            return 400, f"bad Topic {topic!r}"
        if len(body) > MAX_BODY:
            return 413, f"the body is {len(body)} bytes"
        return None

    def _check_jwt(self, token: str, key: str) -> str | None:
        try:
            header_b64, claims_b64, signature_b64 = token.split(".")
            header = json.loads(unb64url(header_b64))
            claims = json.loads(unb64url(claims_b64))
            signature = unb64url(signature_b64)
        except ValueError as error:
            return f"the JWT is malformed: {error}"
        if header.get("alg") != "ES256":
            return f"the JWT must be ES256, not {header.get('alg')!r}"
        if len(signature) != 64:
            return "an ES256 signature is 64 bytes (r and s)"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
        try:
            public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            return "the JWT's signature does not verify with k"
        if claims.get("aud") != self.url:
            return f"aud must be this service's origin {self.url!r}, not {claims.get('aud')!r}"
        now = time.time()
        expires = claims.get("exp")
        if not isinstance(expires, int) or expires <= now or expires > now + MAX_EXPIRY:
            return f"exp must be in the next 24 hours, got {expires!r}"
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject.startswith(("mailto:", "https:")):
            return f"sub must be a mailto: or https: URI, got {subject!r}"
        return None

    def _refuse(self, status: int, why: str) -> Response:
        self.refused.append((status, why))
        return Response(why, status_code=status)

    async def close(self) -> None:
        for event in self.held.values():
            event.set()


def token_of(subscription: dict[str, Any]) -> str:
    return str(subscription["endpoint"]).rsplit("/", 1)[1]


@contextlib.asynccontextmanager
async def running(fake: FakePushService) -> AsyncIterator[FakePushService]:
    """Serve `fake` on a free port in this event loop (its `url` is the service's origin)."""
    async with running_fake(fake, "the fake push service") as served:
        yield served
