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
