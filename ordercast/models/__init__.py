"""Tortoise models and the order state machine; they know nothing of HTTP, Redis or Telegram."""

from ordercast.models.lifecycle import TRANSITIONS, OrderStatus, check_transition
from ordercast.models.tables import (
    AdminUser,
    ApiKey,
    Customer,
    EventRecord,
    IdempotencyKey,
    LoginFailure,
    Order,
    Review,
    StoredSecret,
)

__all__ = [
    "TRANSITIONS",
    "AdminUser",
    "ApiKey",
    "Customer",
    "EventRecord",
    "IdempotencyKey",
    "LoginFailure",
    "Order",
    "OrderStatus",
    "Review",
    "StoredSecret",
    "check_transition",
]
