"""Tortoise models and the order state machine; they know nothing of HTTP, Redis or Telegram."""

from ordercast.models.deliveries import UNFINISHED, Delivery, DeliveryStatus
from ordercast.models.lifecycle import TRANSITIONS, OrderStatus, check_transition
from ordercast.models.notifications import (
    Alert,
    Category,
    Notification,
    NotificationPreference,
    Priority,
    PushService,
    PushSubscription,
    Severity,
)
from ordercast.models.payments import Payment, WebhookReceipt
from ordercast.models.sessions import AdminSession
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
    "AdminSession",
    "AdminUser",
    "Alert",
    "ApiKey",
    "Category",
    "Customer",
    "Delivery",
    "DeliveryStatus",
    "EventRecord",
    "IdempotencyKey",
    "LoginFailure",
    "Notification",
    "NotificationPreference",
    "Order",
    "OrderStatus",
    "Payment",
    "Priority",
    "PushService",
    "PushSubscription",
    "Review",
    "Severity",
    "StoredSecret",
    "TelegramChat",
    "TelegramLink",
    "WebhookReceipt",
    "check_transition",
]
