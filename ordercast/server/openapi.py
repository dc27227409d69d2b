"""`/api/v1/openapi.json`, built in one place from the pydantic models that validate the bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, RootModel
from pydantic.json_schema import models_json_schema

from ordercast import __version__
from ordercast.services.payments import PaymentNotice
from ordercast.services.schemas import (
    AlertResolution,
    NewCustomer,
    NewOrder,
    NewPushSubscription,
    OrderPatch,
    PreferencesUpdate,
    PushEndpoint,
    StatusChange,
    StatusName,
    StreamTokenRequest,
)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class Error(BaseModel):
    error: ErrorBody


class Customer(BaseModel):
    id: str
    external_id: str
    name: str
    email: str | None
    locale: str
    telegram_linked: bool
    created_at: str


class Item(BaseModel):
    sku: str
    name: str
    quantity: int
    unit_price: str
    total: str


class Order(BaseModel):
    id: str
    number: str
    customer_id: str
    status: StatusName
    currency: str
    total: str
    items: list[Item]
    tracking_number: str | None
    note: str | None
    version: int
    created_at: str
    updated_at: str


class OrderPage(BaseModel):
    items: list[Order]
    next_cursor: str | None
    position: str


class Event(BaseModel):
    id: str
    type: str
    occurred_at: str
    data: dict[str, Any]


class EventList(BaseModel):
    items: list[Event]


class Review(BaseModel):
    id: str
    order_id: str
    customer_id: str
    stars: int
    comment: str | None
    created_at: str


class ReviewList(BaseModel):
    items: list[Review]


class StreamToken(BaseModel):
    token: str
    expires_at: str


class TelegramLink(BaseModel):
    url: str
    token: str
    expires_at: str


class TelegramUpdate(BaseModel):
    """A Telegram Update object, as the Bot API posts it to a webhook."""

    model_config = {"extra": "allow"}
    update_id: int


class WebhookAnswer(BaseModel):
    ok: bool


DeliveryStatusName = Literal["pending", "sending", "sent", "retrying", "failed", "skipped"]


class Delivery(BaseModel):
    id: str
    event_id: str
    order_id: str | None
    channel: str
    recipient: str
    status: DeliveryStatusName
    attempts: int
    last_error: str | None
    created_at: str
    sent_at: str | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None


class ChannelStats(BaseModel):
    sent: int
    failed: int
    pending: int
    retried: int
    p50_seconds: float | None
    p95_seconds: float | None


class DeliveryStats(RootModel[dict[str, ChannelStats]]):
    """Per channel (`telegram`, `push`)."""


class WebhookResult(BaseModel):
    status: Literal["applied", "duplicate", "ignored"]
    order: Order | None = None


CategoryName = Literal["orders", "payments", "alerts", "system"]


class Notification(BaseModel):
    id: str
    category: CategoryName
    priority: Literal["low", "normal", "high", "critical"]
    title: str
    body: str
    url: str | None
    order_id: str | None
    read_at: str | None
    created_at: str


class NotificationPage(BaseModel):
    items: list[Notification]
    next_cursor: str | None


class UnreadCount(BaseModel):
    count: int


class Alert(BaseModel):
    id: str
    key: str
    severity: Literal["info", "warning", "error", "critical"]
    title: str
    message: str
    occurrences: int
    first_seen: str
    last_seen: str
    resolved_at: str | None
    resolution_note: str | None


class AlertPage(BaseModel):
    items: list[Alert]
    next_cursor: str | None


class Channels(BaseModel):
    push: bool
    in_app: bool


class Preferences(BaseModel):
    orders: Channels
    payments: Channels
    alerts: Channels
    system: Channels


class VapidPublicKey(BaseModel):
    key: str


class PushSubscription(BaseModel):
    id: str
    endpoint: str
    expires_at: str | None
    created_at: str


class PushTest(BaseModel):
    queued: int


_MODELS: list[type[BaseModel]] = [
    NotificationPage,
    UnreadCount,
    AlertPage,
    AlertResolution,
    Preferences,
    PreferencesUpdate,
    VapidPublicKey,
    NewPushSubscription,
    PushEndpoint,
    PushSubscription,
    PushTest,
    PaymentNotice,
    WebhookResult,
    NewCustomer,
    NewOrder,
    OrderPatch,
    StatusChange,
    StreamTokenRequest,
    Error,
    Customer,
    Order,
    OrderPage,
    EventList,
    ReviewList,
    StreamToken,
    TelegramLink,
    TelegramUpdate,
    WebhookAnswer,
    DeliveryPage,
    DeliveryStats,
]
_ERRORS = {
    "400": "malformed request",
    "401": "missing or invalid credentials",
    "403": "these credentials do not allow this",
    "404": "not found",
    "409": "conflict",
    "413": "body too large",
    "422": "invalid fields",
    "429": "rate limited",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel]) -> dict[str, Any]:
    return {"application/json": {"schema": _ref(model)}}


def _operation(
    summary: str,
    *,
    ok: tuple[int, type[BaseModel]] | None,
    body: type[BaseModel] | None = None,
    params: list[dict[str, Any]] | None = None,
    extra_ok: tuple[int, type[BaseModel]] | None = None,
    body_required: bool = True,
) -> dict[str, Any]:
    responses: dict[str, Any] = {code: {"description": text, "content": _json(Error)} for code, text in _ERRORS.items()}
    if ok is not None:
        responses[str(ok[0])] = {"description": "success", "content": _json(ok[1])}
    if extra_ok is not None:
        responses[str(extra_ok[0])] = {"description": "success", "content": _json(extra_ok[1])}
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": _json(body)}
    if params:
        operation["parameters"] = params
    return operation


def _no_content(operation: dict[str, Any]) -> dict[str, Any]:
    operation["responses"]["204"] = {"description": "done, nothing to return"}
    return operation


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string"},
    }


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


Method = Literal["get", "post", "patch", "delete", "put"]


def build_openapi() -> dict[str, Any]:
    _, definitions = models_json_schema(
        [(model, "validation") for model in _MODELS], ref_template="#/components/schemas/{model}"
    )
    ref = _path("ref", "the order's id, its number, or `#number` percent-encoded")
    customer = _path("customer_id", "the customer's id")
    notification = _path("notification_id", "the notification's id")
    paths: dict[str, dict[Method, dict[str, Any]]] = {
        "/api/v1/customers": {
            "post": _operation(
                "Create a customer (or return the one with this external_id)",
                ok=(201, Customer),
                extra_ok=(200, Customer),
                body=NewCustomer,
            )
        },
        "/api/v1/customers/{customer_id}": {"get": _operation("Get a customer", ok=(200, Customer), params=[customer])},
        "/api/v1/customers/{customer_id}/stream-token": {
            "post": _operation(
                "Issue a customer token for their event stream and orders",
                ok=(201, StreamToken),
                body=StreamTokenRequest,
                params=[customer],
                body_required=False,
            )
        },
        "/api/v1/customers/{customer_id}/telegram-link": {
            "post": _operation(
                "Issue a single-use link that connects a Telegram chat to the customer",
                ok=(201, TelegramLink),
                params=[customer],
            )
        },
        "/api/v1/orders": {
            "post": _operation(
                "Create an order",
                ok=(201, Order),
                body=NewOrder,
                params=[
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    }
                ],
            ),
            "get": _operation(
                "List orders, newest first",
                ok=(200, OrderPage),
                params=[
                    _query("status", {"type": "string", "enum": list(StatusName.__args__)}),  # type: ignore[attr-defined]
                    _query("customer_id", {"type": "string"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                    _query("cursor", {"type": "string"}),
                ],
            ),
        },
        "/api/v1/orders/{ref}": {
            "get": _operation("Get an order", ok=(200, Order), params=[ref]),
            "patch": _operation(
                "Change an order's tracking number or note", ok=(200, Order), body=OrderPatch, params=[ref]
            ),
        },
        "/api/v1/orders/{ref}/status": {
            "post": _operation("Change an order's status", ok=(200, Order), body=StatusChange, params=[ref])
        },
        "/api/v1/orders/{ref}/events": {
            "get": _operation("An order's events, oldest first", ok=(200, EventList), params=[ref])
        },
        "/api/v1/webhooks/payments": {
            "post": {
                **_operation(
                    "A payment provider's signed notice (Standard Webhooks, or Stripe-Signature)",
                    ok=(200, WebhookResult),
                    body=PaymentNotice,
                ),
                "security": [],
            }
        },
        "/api/v1/reviews": {
            "get": _operation(
                "Reviews, newest first",
                ok=(200, ReviewList),
                params=[_query("order_id", {"type": "string"})],
            )
        },
        "/api/v1/deliveries": {
            "get": _operation(
                "Deliveries (outbound messages), newest first",
                ok=(200, DeliveryPage),
                params=[
                    _query("order_id", {"type": "string"}),
                    _query("channel", {"type": "string"}),
                    _query("status", {"type": "string", "enum": list(DeliveryStatusName.__args__)}),  # type: ignore[attr-defined]
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                    _query("cursor", {"type": "string"}),
                ],
            )
        },
        "/api/v1/deliveries/stats": {
            "get": _operation("Delivery counts and send latency per channel", ok=(200, DeliveryStats))
        },
        "/api/v1/notifications": {
            "get": _operation(
                "The caller's notifications, newest first",
                ok=(200, NotificationPage),
                params=[
                    _query("unread", {"type": "boolean"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                    _query("cursor", {"type": "string"}),
                ],
            )
        },
        "/api/v1/notifications/unread-count": {
            "get": _operation("How many of the caller's notifications are unread", ok=(200, UnreadCount))
        },
        "/api/v1/notifications/read-all": {
            "post": _operation(
                "Mark all the caller's notifications read (the unread count after)", ok=(200, UnreadCount)
            )
        },
        "/api/v1/notifications/{notification_id}/read": {
            "post": _operation("Mark one notification read", ok=(200, Notification), params=[notification])
        },
        "/api/v1/notifications/{notification_id}": {
            "delete": _no_content(_operation("Delete one notification", ok=None, params=[notification]))
        },
        "/api/v1/alerts": {
            "get": _operation(
                "Alerts, newest first",
                ok=(200, AlertPage),
                params=[
                    _query("resolved", {"type": "boolean"}),
                    _query("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
                    _query("cursor", {"type": "string"}),
                ],
            )
        },
        "/api/v1/alerts/{alert_id}/resolve": {
            "post": _operation(
                "Resolve an open alert (raising its key again opens a new one)",
                ok=(200, Alert),
                body=AlertResolution,
                body_required=False,
                params=[_path("alert_id", "the alert's id")],
            )
        },
        "/api/v1/me/preferences": {
            "get": _operation("The caller's channels per category (both on unless turned off)", ok=(200, Preferences)),
            "put": _operation(
                "Change the channels named; returns the whole document",
                ok=(200, Preferences),
                body=PreferencesUpdate,
            ),
        },
        "/api/v1/push/vapid-public-key": {
            "get": {**_operation("The VAPID public key to subscribe with", ok=(200, VapidPublicKey)), "security": []}
        },
        "/api/v1/push/subscriptions": {
            "post": _operation(
                "Store the browser's PushSubscription for the caller (the same endpoint again: 200, updated)",
                ok=(201, PushSubscription),
                extra_ok=(200, PushSubscription),
                body=NewPushSubscription,
            ),
            "delete": _no_content(
                _operation("Delete the caller's subscription with this endpoint", ok=None, body=PushEndpoint)
            ),
        },
        "/api/v1/push/test": {
            "post": _operation("Push a test notification to each of the caller's subscriptions", ok=(200, PushTest))
        },
        "/api/v1/telegram/webhook": {
            "post": {
                **_operation(
                    "Telegram's webhook (checked by X-Telegram-Bot-Api-Secret-Token)",
                    ok=(200, WebhookAnswer),
                    body=TelegramUpdate,
                    params=[
                        {
                            "name": "X-Telegram-Bot-Api-Secret-Token",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        }
                    ],
                ),
                "security": [],
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "ordercast", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": definitions["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
