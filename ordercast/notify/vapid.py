"""VAPID (RFC 8292): the server's P-256 key, and the signed `Authorization: vapid t=…,k=…` header."""

from __future__ import annotations

import base64
import binascii
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

# Push services refuse a token that expires more than 24 hours ahead; renew well before it expires.
TOKEN_LIFETIME = 12 * 3600
RENEW_BEFORE = 3600


def audience(endpoint: str) -> str:
    """The push service an endpoint belongs to (its origin): a token's `aud`, and what a 429 pauses."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}".lower()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class InvalidKey(ValueError):
    """Not a P-256 private key in PEM or base64url."""


class VapidKey:
    """The application server's key pair: subscriptions are made for its public key."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise InvalidKey("a VAPID key must be on the P-256 curve")
        self._key = private_key
        # Our Settings check the subject; py_vapid's own check refuses valid ones such as mailto:a@b.
        self._signer = Vapid02(private_key=private_key, conf={"no-strict": True})
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.public_key = b64url(raw)

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def parse(cls, text: str) -> VapidKey:
        """A PEM private key, or the base64url of the raw 32-byte private value (as `vapid --gen` and
        web-push tools print it)."""
        text = text.strip()
        try:
            if text.startswith("-----BEGIN"):
                key = serialization.load_pem_private_key(text.encode(), password=None)
                if not isinstance(key, ec.EllipticCurvePrivateKey):
                    raise InvalidKey("the PEM key is not an elliptic-curve key")
                return cls(key)
            raw = unb64url(text)
            if len(raw) != 32:
                raise InvalidKey("a raw VAPID private key is 32 bytes (43 base64url characters)")
            return cls(ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1()))
        except (ValueError, binascii.Error, TypeError) as error:
            if isinstance(error, InvalidKey):
                raise
            raise InvalidKey(f"not a VAPID private key: {error}") from None

    @staticmethod
    def check_public(raw: bytes) -> None:
        """Raise `ValueError` unless `raw` is an uncompressed point on P-256 (a browser's `p256dh`)."""
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)

    def serialize(self) -> str:
        """The base64url of the raw private value (what `parse` reads)."""
        return b64url(self._key.private_numbers().private_value.to_bytes(32, "big"))

    def authorization(self, audience: str, subject: str, now: float | None = None) -> Token:
        """A signed token for one push service (`audience`: its origin), valid for `TOKEN_LIFETIME`."""
        expires = int(now if now is not None else time.time()) + TOKEN_LIFETIME
        header = self._signer.sign({"aud": audience, "exp": expires, "sub": subject})["Authorization"]
        return Token(header=str(header), expires=expires)


@dataclass(frozen=True, slots=True)
class Token:
    header: str
    expires: int

    def fresh(self, now: float) -> bool:
        return now < self.expires - RENEW_BEFORE
