"""The event vocabulary: types, the envelope, channels, positions and serialisation."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import orjson

EventType = Literal[
    "order.created",
    "order.status_changed",
    "order.updated",
    "review.created",
    "notification.created",
    "notification.read",
    "notification.deleted",
    "alert.raised",
    "alert.resolved",
]

ADMIN_CHANNEL: Final = "admin"
_CUSTOMER_PREFIX: Final = "customer:"


def customer_channel(customer_id: str) -> str:
    return f"{_CUSTOMER_PREFIX}{customer_id}"


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds and a `Z`: `2026-12-01T21:00:00.123456Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def channels_for(event_type: str, customer_id: str | None, data: dict[str, Any]) -> tuple[str, ...]:
    """Every event goes to `admin`; order and review events also to their customer's channel, except a
    change of what only the shop sees (the internal note)."""
    reaches_customer = event_type.startswith("order.") or event_type == "review.created"
    if customer_id and reaches_customer and not shop_only(event_type, data):
        return (ADMIN_CHANNEL, customer_channel(customer_id))
    return (ADMIN_CHANNEL,)


def shop_only(event_type: str, data: dict[str, Any]) -> bool:
    """An `order.updated` that changed nothing but the shop's internal note: customers never hear of it."""
    return event_type == "order.updated" and data.get("changed") == ["note"]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, as stored in the outbox and sent to clients."""

    id: str
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    # Events with the same key (their order's id) are placed in the order they happened.
    ordering_key: str | None = None
    channels: tuple[str, ...] = (ADMIN_CHANNEL,)
    _encoded: list[bytes] = field(default_factory=list, repr=False, compare=False)
    # Events recorded in the same transaction because of this one (the admins' `notification.created`):
    # publishing this event publishes them right after it.
    caused: tuple[Event, ...] = field(default=(), repr=False, compare=False)
    # Whether its transaction queued deliveries: the committing process wakes its senders only then.
    queued: bool = field(default=False, repr=False, compare=False)

    def with_caused(self) -> tuple[Event, ...]:
        """This event, then every event it caused."""
        return (self, *self.caused)

    def envelope(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": format_time(self.occurred_at),
            "data": self.data,
        }

    def encode(self) -> bytes:
        """The envelope as one line of JSON, computed once per event."""
        if not self._encoded:
            self._encoded.append(orjson.dumps(self.envelope()))
        return self._encoded[0]

    def to_record(self) -> dict[str, Any]:
        """A self-contained dict (for a broker's history), the inverse of `from_record`."""
        return {
            "id": self.id,
            "type": self.type,
            "occurred_at": format_time(self.occurred_at),
            "data": self.data,
            "ordering_key": self.ordering_key,
            "channels": list(self.channels),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Event:
        return cls(
            id=record["id"],
            type=record["type"],
            occurred_at=parse_time(record["occurred_at"]),
            data=record["data"],
            ordering_key=record.get("ordering_key"),
            channels=tuple(record.get("channels", (ADMIN_CHANNEL,))),
        )


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where an event sits in a channel: `<epoch>:<offset>`, offsets contiguous per epoch."""

    epoch: str
    offset: int

    def __str__(self) -> str:
        return f"{self.epoch}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> Position | None:
        epoch, sep, offset = text.rpartition(":")
        if not sep or not epoch or not offset.isdigit() or len(offset) > 18:
            return None
        return cls(epoch, int(offset))
