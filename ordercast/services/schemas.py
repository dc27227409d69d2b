"""The inputs of the use cases, as pydantic models: they validate API bodies and feed openapi.json."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ordercast.models import OrderStatus

StatusName = Literal[
    "pending_payment",
    "paid",
    "payment_failed",
    "expired",
    "accepted",
    "packing",
    "dispatched",
    "delivered",
    "cancelled",
    "refunded",
]
assert set(StatusName.__args__) == {s.value for s in OrderStatus}  # type: ignore[attr-defined]

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
    status: StatusName
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
