"""Tortoise models and the order state machine; they know nothing of HTTP, Redis or Telegram."""

from ordercast.models.deliveries import UNFINISHED, Delivery, DeliveryStatus
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
from ordercast.models.telegram import TelegramChat, TelegramLink

__all__ = [
    "TRANSITIONS",
    "UNFINISHED",
    "AdminUser",
    "ApiKey",
    "Customer",
    "Delivery",
    "DeliveryStatus",
    "EventRecord",
    "IdempotencyKey",
    "LoginFailure",
    "Order",
    "OrderStatus",
    "Review",
    "StoredSecret",
    "TelegramChat",
    "TelegramLink",
    "check_transition",
]
