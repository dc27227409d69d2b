"""Payments reported by providers: each notice moves its order once, or raises an alert."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from ordercast.errors import Conflict, Invalid, NotFound
from ordercast.events import Event
from ordercast.models import TRANSITIONS, Order, OrderStatus
from ordercast.models.money import format_amount, is_currency, parse_amount
from ordercast.models.payments import Payment, WebhookReceipt
from ordercast.services.alerts import raise_alert
from ordercast.services.orders import ref_filter
from ordercast.services.outbox import Publish, record_event
from ordercast.services.schemas import Body, DecimalString

PaymentKind = Literal["payment.succeeded", "payment.failed", "payment.expired"]
TARGET: dict[str, OrderStatus] = {
    "payment.succeeded": OrderStatus.PAID,
    "payment.failed": OrderStatus.PAYMENT_FAILED,
    "payment.expired": OrderStatus.EXPIRED,
}


class PaymentData(Body):
    order_id: str | None = Field(default=None, max_length=40)
    order_number: str | None = Field(default=None, max_length=9)
    amount: DecimalString
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    payment_id: str = Field(min_length=1, max_length=255)

    @model_validator(mode="after")
    def _one_reference(self) -> PaymentData:
        if (self.order_id is None) == (self.order_number is None):
            raise ValueError("give exactly one of order_id and order_number")
        return self


class PaymentNotice(Body):
    """`POST /api/v1/webhooks/payments`: what a provider tells about one payment."""

    type: PaymentKind
    data: PaymentData


Outcome = Literal["applied", "duplicate", "ignored"]


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    order: Order | None = None


class Payments:
    """Apply payment notices through the order lifecycle, in one transaction each."""

    def __init__(self, publish: Publish, *, receipt_ttl: float) -> None:
        self._publish = publish
        self._receipt_ttl = receipt_ttl
        self._remembered = 0

    async def seen(self, webhook_id: str) -> bool:
        """Whether this webhook was already answered 2xx (within the retention window)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=self._receipt_ttl)
        return await WebhookReceipt.exists(webhook_id=webhook_id, received_at__gte=cutoff)

    async def apply(self, notice: PaymentNotice, *, webhook_id: str) -> Result:
        data = notice.data
        if not is_currency(data.currency):
            raise Invalid.field("data.currency", f"{data.currency} is not an ISO 4217 currency")
        amount = parse_amount(data.amount, data.currency, field="data.amount")
        ref = data.order_id or (data.order_number or "")
        target = TARGET[notice.type]
        problem: tuple[str, str, str] | None = None
        events: list[Event] = []
        async with in_transaction() as conn:
            order = await Order.select_for_update().using_db(conn).filter(**ref_filter(ref)).first()
            if order is None:
                # Not remembered: the order may not exist yet, and the provider will retry.
                raise NotFound(f"no order {ref!r}", details={"ref": ref})
            if await Payment.filter(payment_id=data.payment_id, kind=notice.type).using_db(conn).exists():
                outcome: Outcome = "duplicate"
            elif data.currency != order.currency or amount != Decimal(order.total):
                expected = f"{format_amount(Decimal(order.total), order.currency)} {order.currency}"
                problem = (
                    "amount",
                    f"payment for order #{order.number} does not match its total",
                    f"Payment {data.payment_id} of {data.amount} {data.currency} does not match "
                    f"the order's {expected}: check it with the provider.",
                )
                outcome = "ignored"
            elif target not in TRANSITIONS[OrderStatus(order.status)]:
                if notice.type == "payment.succeeded":
                    problem = (
                        "unexpected",
                        f"payment received for {order.status} order #{order.number}: refund it",
                        f"Payment {data.payment_id} of {data.amount} {data.currency} arrived for order "
                        f"#{order.number}, which is {order.status} and cannot take it: refund the customer.",
                    )
                # A failure or expiry notice for an order that moved on (paid since, say) is stale news.
                outcome = "ignored"
            else:
                previous = order.transition(to=target)
                await order.save(using_db=conn)
                payload = {
                    "order": order.as_json(internal=False),
                    "from": previous.value,
                    "to": order.status,
                    "payment_id": data.payment_id,
                }
                events.append(await record_event(conn, "order.status_changed", payload, order=order))
                outcome = "applied"
            if problem is None and outcome != "duplicate":
                await Payment.create(
                    payment_id=data.payment_id,
                    kind=notice.type,
                    order_id=order.id,
                    amount=amount,
                    currency=data.currency,
                    outcome=outcome,
                    received_at=datetime.now(UTC),
                    using_db=conn,
                )
        if problem is not None:
            await self._alert(order, *problem)
            raise Conflict(problem[1], details={"order": order.number, "reason": problem[0]})
        self._publish(events)
        await self.remember(webhook_id)
        return Result(outcome, order)

    async def remember(self, webhook_id: str) -> None:
        """Record a webhook answered 2xx; now and then, forget those past the retention window."""
        now = datetime.now(UTC)
        try:
            await WebhookReceipt.create(webhook_id=webhook_id, received_at=now)
        except IntegrityError:
            await WebhookReceipt.filter(webhook_id=webhook_id).update(received_at=now)
        self._remembered += 1
        if self._remembered % 500 == 1:
            await WebhookReceipt.filter(received_at__lt=now - timedelta(seconds=self._receipt_ttl)).delete()

    async def _alert(self, order: Order, reason: str, title: str, message: str) -> None:
        async with in_transaction() as conn:
            events = await raise_alert(
                conn, key=f"payment:{reason}:{order.number}", severity="error", title=title, message=message
            )
        self._publish(events)
