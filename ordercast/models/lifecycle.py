"""The order state machine: the one place that decides whether a status change is allowed."""

from __future__ import annotations

from enum import StrEnum

from ordercast.errors import InvalidTransition


class OrderStatus(StrEnum):
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    PAYMENT_FAILED = "payment_failed"
    EXPIRED = "expired"
    ACCEPTED = "accepted"
    PACKING = "packing"
    DISPATCHED = "dispatched"
    DELIVERED = "delivered"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"


S = OrderStatus
TRANSITIONS: dict[OrderStatus, tuple[OrderStatus, ...]] = {
    S.PENDING_PAYMENT: (S.PAID, S.PAYMENT_FAILED, S.EXPIRED, S.CANCELLED),
    S.PAYMENT_FAILED: (S.PAID, S.EXPIRED, S.CANCELLED),
    S.PAID: (S.ACCEPTED, S.CANCELLED, S.REFUNDED),
    S.ACCEPTED: (S.PACKING, S.CANCELLED, S.REFUNDED),
    S.PACKING: (S.DISPATCHED, S.CANCELLED, S.REFUNDED),
    S.DISPATCHED: (S.DELIVERED,),
    S.DELIVERED: (S.REFUNDED,),
    S.EXPIRED: (),
    S.CANCELLED: (),
    S.REFUNDED: (),
}


def check_transition(current: OrderStatus, to: OrderStatus) -> None:
    """Raise `InvalidTransition` unless `current → to` is one of the allowed changes."""
    allowed = TRANSITIONS[current]
    if to not in allowed:
        raise InvalidTransition(
            f"an order cannot go from {current.value} to {to.value}",
            details={"from": current.value, "to": to.value, "allowed": [s.value for s in allowed]},
        )
