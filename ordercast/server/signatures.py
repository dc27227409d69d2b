"""Inbound webhook signatures: Standard Webhooks and Stripe's scheme, checked on the raw body.

Written here rather than taken from the `standardwebhooks` package: that verifier handles one
secret (we rotate several), decodes the body as text before checking it, and lets a malformed
signature header escape as `ValueError` / `binascii.Error` (a 500 for bad input). The scheme itself
is a few lines; the tests check it against the specification's test vectors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from ordercast.errors import Unauthenticated

TOLERANCE_SECONDS = 300


def _decode_secret(secret: str) -> bytes:
    body = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error:
        raise ValueError("a whsec_ secret must be base64 after its prefix") from None
    if not key:
        raise ValueError("a webhook secret must not be empty")
    return key


def _check_timestamp(text: str, now: float) -> None:
    if not text.isdigit() or len(text) > 12:
        raise Unauthenticated("the webhook timestamp is malformed")
    if abs(now - int(text)) > TOLERANCE_SECONDS:
        raise Unauthenticated("the webhook timestamp is outside the 5-minute window")


class StandardWebhooks:
    """`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64 HMAC-SHA256>` (several, spaced)."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keys = [_decode_secret(secret) for secret in secrets]

    @staticmethod
    def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
        """The `v1,…` signature a sender with `secret` puts on `body` (tests and the README use it)."""
        payload = f"{webhook_id}.{timestamp}.".encode() + body
        digest = hmac.new(_decode_secret(secret), payload, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()

    def verify(self, headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> str:
        """The webhook id, if some secret signed exactly this body recently; else `Unauthenticated`."""
        webhook_id = headers.get("webhook-id", "")
        timestamp = headers.get("webhook-timestamp", "")
        signatures = headers.get("webhook-signature", "")
        if not webhook_id or not timestamp or not signatures or len(webhook_id) > 255:
            raise Unauthenticated("webhook-id, webhook-timestamp and webhook-signature are required")
        _check_timestamp(timestamp, time.time() if now is None else now)
        payload = f"{webhook_id}.{timestamp}.".encode() + body
        expected = [hmac.new(key, payload, hashlib.sha256).digest() for key in self._keys]
        for candidate in signatures.split():
            version, _, encoded = candidate.partition(",")
            if version != "v1":
                continue
            try:
                given = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                continue
            # Compare against every secret, so timing says nothing about which one (if any) matched.
            matched = False
            for digest in expected:
                matched |= hmac.compare_digest(digest, given)
            if matched:
                return webhook_id
        raise Unauthenticated("no valid webhook signature")


class StripeSignatures:
    """`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">[,v1=…]` with the endpoint secret."""

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keys = [secret.encode() for secret in secrets if secret]

    @staticmethod
    def sign(secret: str, timestamp: int, body: bytes) -> str:
        digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={timestamp},v1={digest}"

    def verify(self, header: str, body: bytes, *, now: float | None = None) -> None:
        fields = [item.partition("=") for item in header.split(",")]
        timestamps = [value for key, _, value in fields if key.strip() == "t"]
        given = [value.strip() for key, _, value in fields if key.strip() == "v1"]
        if len(timestamps) != 1 or not given:
            raise Unauthenticated("the Stripe-Signature header is malformed")
        _check_timestamp(timestamps[0].strip(), time.time() if now is None else now)
        payload = f"{timestamps[0].strip()}.".encode() + body
        expected = [hmac.new(key, payload, hashlib.sha256).hexdigest() for key in self._keys]
        matched = False
        for signature in given:
            for digest in expected:
                matched |= hmac.compare_digest(digest.encode(), signature.encode())
        if not matched:
            raise Unauthenticated("no valid Stripe signature")
