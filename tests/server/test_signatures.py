"""Webhook signature schemes, against the Standard Webhooks test vector and Stripe's documented recipe."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from ordercast.errors import Unauthenticated
from ordercast.server.signatures import StandardWebhooks, StripeSignatures

# The specification's example (standard-webhooks.com, also in Svix's docs).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def headers(signature: str = SIGNATURE, timestamp: int = TIMESTAMP, webhook_id: str = MSG_ID) -> dict[str, str]:
    return {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_the_specifications_vector_signs_and_verifies() -> None:
    assert StandardWebhooks.sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    assert StandardWebhooks([SECRET]).verify(headers(), BODY, now=TIMESTAMP + 10) == MSG_ID


def test_any_of_several_signatures_and_any_of_several_secrets_verifies() -> None:
    other = "whsec_" + "QUJD" * 8
    verifier = StandardWebhooks([other, SECRET])
    assert verifier.verify(headers(f"v1,bm9wZQ== v2,xyz {SIGNATURE}"), BODY, now=TIMESTAMP) == MSG_ID


@pytest.mark.parametrize(
    ("given", "now"),
    [
        (headers(), TIMESTAMP + 301),  # stale
        (headers(), TIMESTAMP - 301),  # from the future
        (headers(signature="v1,AAAA"), TIMESTAMP),
        (headers(signature="v1,not base64!"), TIMESTAMP),
        (headers(signature="garbage"), TIMESTAMP),
        (headers(signature=SIGNATURE.replace("v1", "v2")), TIMESTAMP),
        (headers(timestamp=-5), TIMESTAMP),
        (headers(webhook_id="msg_other"), TIMESTAMP),
        ({}, TIMESTAMP),
    ],
)
def test_bad_stale_or_missing_signatures_are_unauthenticated(given: dict[str, str], now: int) -> None:
    with pytest.raises(Unauthenticated):
        StandardWebhooks([SECRET]).verify(given, BODY, now=now)


def test_a_changed_body_or_a_rotated_out_secret_fails() -> None:
    with pytest.raises(Unauthenticated):
        StandardWebhooks([SECRET]).verify(headers(), BODY + b" ", now=TIMESTAMP)
    with pytest.raises(Unauthenticated):
        StandardWebhooks(["whsec_" + "QUJD" * 8]).verify(headers(), BODY, now=TIMESTAMP)


def test_stripe_signature_made_as_stripes_documentation_shows() -> None:
    secret = "whsec_test_secret"
    payload = b'{"id": "evt_1", "type": "payment_intent.succeeded"}'
    timestamp = 1_700_000_000
    # Stripe's docs: HMAC-SHA256 with the endpoint secret over "<timestamp>.<payload>", hex-encoded.
    signed_payload = f"{timestamp}.{payload.decode()}"
    expected = hmac.new(secret.encode("utf-8"), signed_payload.encode("utf-8"), hashlib.sha256).hexdigest()
    header = f"t={timestamp},v1={expected},v0=ignored"
    StripeSignatures([secret]).verify(header, payload, now=timestamp + 5)
    assert StripeSignatures.sign(secret, timestamp, payload) == f"t={timestamp},v1={expected}"
    for bad in (f"t={timestamp},v1={'0' * 64}", f"v1={expected}", "", f"t=x,v1={expected}"):
        with pytest.raises(Unauthenticated):
            StripeSignatures([secret]).verify(bad, payload, now=timestamp)
    with pytest.raises(Unauthenticated):
        StripeSignatures([secret]).verify(header, payload, now=timestamp + 301)
