"""The API's shapes as pydantic models: the inputs validate bodies, the outputs document answers in openapi.json."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from ordercast.models import Category, DeliveryStatus, OrderStatus, Priority, Severity

# A decimal string, never a JSON number: floats can't carry money exactly.
DecimalString = Annotated[str, Field(pattern=r"^[0-9]{1,16}(\.[0-9]{1,4})?$", examples=["25.90"])]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: object) -> object:
        # PostgreSQL text can't hold NUL; refuse it here rather than fail at the database.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value


class NewCustomer(Body):
    external_id: str = Field(min_length=1, max_length=255)
    name: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    locale: str = Field(default="en", pattern=r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$", max_length=35)


class NewItem(Body):
    sku: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=255)
    quantity: int = Field(ge=1, le=10_000)
    unit_price: DecimalString


class NewOrder(Body):
    customer_id: str = Field(min_length=1, max_length=40)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    items: list[NewItem] = Field(min_length=1, max_length=100)
    external_id: str | None = Field(default=None, max_length=255)


class OrderPatch(Body):
    tracking_number: str | None = Field(default=None, max_length=255)
    note: str | None = Field(default=None, max_length=2000)


class StatusChange(Body):
    # Not strict: a JSON string is never an enum instance; unknown names fail as "Input should be 'paid', …".
    status: Annotated[OrderStatus, Field(strict=False)]
    tracking_number: str | None = Field(default=None, max_length=255)
    note: str | None = Field(default=None, max_length=2000)


class StreamTokenRequest(Body):
    ttl_seconds: int = Field(default=86_400, ge=1, le=30 * 86_400)


class PushKeys(Body):
    # base64url (padding optional): the browser's P-256 public key (65 bytes) and auth secret (16 bytes).
    p256dh: str = Field(min_length=86, max_length=88, pattern=r"^[A-Za-z0-9_-]+={0,2}$")
    auth: str = Field(min_length=22, max_length=24, pattern=r"^[A-Za-z0-9_-]+={0,2}$")


class NewPushSubscription(Body):
    """The browser's `PushSubscription.toJSON()`."""

    endpoint: str = Field(min_length=1, max_length=1024)
    # Milliseconds since the epoch, when the browser will drop the subscription (usually null).
    expirationTime: float | None = None  # (the browser's spelling)
    keys: PushKeys


class PushEndpoint(Body):
    endpoint: str = Field(min_length=1, max_length=1024)


class ChannelChoice(Body):
    """Which channels a category reaches; a channel left out keeps its current setting."""

    push: bool = True
    in_app: bool = True


class PreferencesUpdate(Body):
    """`PUT /api/v1/me/preferences`: only the categories (and channels) named change."""

    orders: ChannelChoice = ChannelChoice()
    payments: ChannelChoice = ChannelChoice()
    alerts: ChannelChoice = ChannelChoice()
    system: ChannelChoice = ChannelChoice()


class AlertResolution(Body):
    note: str | None = Field(default=None, max_length=2000)


class TelegramUpdate(BaseModel):
    """A Telegram Update object, as the Bot API posts it to a webhook."""

    model_config = ConfigDict(extra="allow")
    update_id: int


class LoginForm(BaseModel):
    """`POST /login`, form-encoded: the dashboard's sign-in."""

    email: str
    password: str
    next: str | None = None


# What the API answers, as the models' `as_json` build it: these only document the answers.


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
    status: OrderStatus
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


class WebhookAnswer(BaseModel):
    ok: bool


class Delivery(BaseModel):
    id: str
    event_id: str
    order_id: str | None
    channel: str
    recipient: str
    status: DeliveryStatus
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
    # services.payments' `Outcome` (that module imports this one, so it can't be imported here).
    status: Literal["applied", "duplicate", "ignored"]
    order: Order | None = None


class Notification(BaseModel):
    id: str
    category: Category
    priority: Priority
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
    severity: Severity
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


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """`ready` (200) or `unavailable` (503), and what was checked."""

    model_config = ConfigDict(extra="allow")
    status: Literal["ready", "unavailable"]
