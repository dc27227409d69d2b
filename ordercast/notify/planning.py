"""Pure delivery planning: which (channel, recipient) rows an event causes, and which start skipped."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from ordercast.models.deliveries import DeliveryStatus
from ordercast.models.lifecycle import TRANSITIONS

TELEGRAM: Final = "telegram"
PUSH: Final = "push"
CHANNELS: Final = (TELEGRAM, PUSH)
# Deliveries to one recipient go out one at a time, in order: a chat reads its messages in order.
# Pushes keep that order only per order: a newer push about an order must not be overtaken by an
# older one (it replaces it, by Topic), but pushes about different orders may pass each other.
QUEUED_PER_ORDER: Final = frozenset({PUSH})

# Every status a customer hears about: every one an order can change to (all but the one it starts in).
CUSTOMER_STATUSES: Final = frozenset(status for targets in TRANSITIONS.values() for status in targets)


@dataclass(frozen=True, slots=True)
class CustomerChat:
    """The Telegram chat linked to an order's customer, as planning needs to know it."""

    chat_id: int
    locale: str
    stopped: bool
    inactive: bool


@dataclass(frozen=True, slots=True)
class AdminRecipient:
    """An admin, their preferences for the event's category, and their push subscriptions."""

    user_id: str
    in_app: bool
    push: bool
    subscriptions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Audience:
    """Who could hear about an event: the customer's chat, and the admins (for events they are told of)."""

    customer_chat: CustomerChat | None = None
    admins: tuple[AdminRecipient, ...] = ()


@dataclass(frozen=True, slots=True)
class Planned:
    channel: str
    recipient: str
    locale: str
    status: DeliveryStatus = DeliveryStatus.PENDING
    reason: str | None = None


def wants_customer_chat(event_type: str, data: dict[str, Any]) -> bool:
    """Whether planning `event_type` needs the customer's chat (so the caller looks it up only then)."""
    return event_type == "order.status_changed" and data.get("to") in CUSTOMER_STATUSES


def notifies_admins(event_type: str, data: dict[str, Any]) -> bool:
    """Whether admins hear of `event_type` (in the app and by push): orders, payments, reviews, new alerts."""
    if event_type == "alert.raised":
        return bool(data.get("alert", {}).get("occurrences") == 1)
    return event_type in ("order.created", "review.created") or (
        event_type == "order.status_changed" and data.get("to") in CUSTOMER_STATUSES
    )


def plan(event_type: str, data: dict[str, Any], audience: Audience) -> list[Planned]:
    """The deliveries an event causes: a Telegram message per status change to a linked chat, and a push
    to each subscription of each admin (skipped where their preferences turn push off; the caller passes
    admins only for events they hear of)."""
    planned: list[Planned] = []
    chat = audience.customer_chat
    if chat is not None and wants_customer_chat(event_type, data):
        reason = "stopped" if chat.stopped else "inactive" if chat.inactive else None
        planned.append(
            Planned(
                channel=TELEGRAM,
                recipient=str(chat.chat_id),
                locale=chat.locale,
                status=DeliveryStatus.SKIPPED if reason else DeliveryStatus.PENDING,
                reason=reason,
            )
        )
    for admin in audience.admins:
        # Preferences that turn push off still leave a row per device, `skipped`, so the deliveries
        # list says why a device heard nothing.
        status = DeliveryStatus.PENDING if admin.push else DeliveryStatus.SKIPPED
        reason = None if admin.push else "preferences"
        planned.extend(
            Planned(channel=PUSH, recipient=sub, locale="en", status=status, reason=reason)
            for sub in admin.subscriptions
        )
    return planned
