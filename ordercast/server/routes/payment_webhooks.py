"""`POST /api/v1/webhooks/payments`: signed payment notices (Standard Webhooks, or Stripe's events)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ordercast.errors import Malformed, OrdercastError, Unauthenticated, Unavailable
from ordercast.models.money import format_amount, is_currency, minor_digits
from ordercast.server.http import JSON, parse_model
from ordercast.server.openapi import ApiRoute, Operation
from ordercast.server.runtime import runtime
from ordercast.services import schemas
from ordercast.services.payments import PaymentNotice

# Stripe's PaymentIntent events, as our payment kinds.
STRIPE_KINDS = {
    "payment_intent.succeeded": "payment.succeeded",
    "payment_intent.payment_failed": "payment.failed",
    "payment_intent.canceled": "payment.expired",
}


def _parse(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"the body is not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise Malformed("the body must be a JSON object")
    return value


def from_stripe(event: dict[str, Any]) -> dict[str, Any] | None:
    """A Stripe PaymentIntent event as our notice (the order named in its metadata); None to ignore it."""
    kind = STRIPE_KINDS.get(str(event.get("type")))
    intent = event.get("data", {}).get("object") if isinstance(event.get("data"), dict) else None
    if kind is None or not isinstance(intent, dict):
        return None
    metadata = intent.get("metadata")
    if not isinstance(metadata, dict):
        metadata = {}
    currency = str(intent.get("currency", "")).upper()
    minor = intent.get("amount_received") or intent.get("amount")
    if not isinstance(minor, int) or isinstance(minor, bool) or not is_currency(currency):
        raise Malformed("the PaymentIntent has no integer amount or no known currency")
    amount = format_amount(Decimal(minor).scaleb(-minor_digits(currency)), currency)
    data = {"amount": amount, "currency": currency, "payment_id": intent.get("id")}
    for key in ("order_id", "order_number"):
        if key in metadata:
            data[key] = metadata[key]
    return {"type": kind, "data": data}


async def payment_webhook(request: Request) -> Response:
    rt = runtime(request)
    # The raw bytes, signature first: nothing of the body is parsed before it is verified.
    body = await request.body()
    stripe_header = request.headers.get("stripe-signature")
    try:
        if stripe_header is not None and rt.stripe_signatures is not None:
            rt.stripe_signatures.verify(stripe_header, body)
            event = _parse(body)
            webhook_id = f"stripe:{event.get('id')}"
            notice_json = from_stripe(event) if event.get("object") == "event" else event
        elif rt.payment_signatures is not None:
            webhook_id = rt.payment_signatures.verify(request.headers, body)
            notice_json = _parse(body)
        else:
            raise Unavailable("payment webhooks are off: set ORDERCAST_PAYMENT_WEBHOOK_SECRET")
        if await rt.payments.seen(webhook_id):
            rt.metrics.webhooks.labels("duplicate").inc()
            return JSON({"status": "duplicate"})
        if notice_json is None:
            await rt.payments.remember(webhook_id)
            rt.metrics.webhooks.labels("ignored").inc()
            return JSON({"status": "ignored"})
        notice = parse_model(PaymentNotice, notice_json)
        result = await rt.payments.apply(notice, webhook_id=webhook_id)
    except OrdercastError as error:
        label = "unauthenticated" if isinstance(error, Unauthenticated) else error.code
        rt.metrics.webhooks.labels(label).inc()
        raise
    rt.metrics.webhooks.labels(result.outcome).inc()
    order = result.order.as_json() if result.order is not None else None
    return JSON({"status": result.outcome, "order": order})


routes = [
    ApiRoute(
        "POST",
        "/api/v1/webhooks/payments",
        payment_webhook,
        Operation(
            "A payment provider's signed notice (Standard Webhooks, or Stripe-Signature)",
            ok=schemas.WebhookResult,
            body=PaymentNotice,
            public=True,
        ),
    )
]
