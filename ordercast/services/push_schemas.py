"""The push device routes' inputs (validated like every API body) and answers (documenting them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ordercast.services.schemas import NewPushSubscription, PushSubscription


class NewPushDevice(NewPushSubscription):
    """The browser's `PushSubscription.toJSON()`, and what the admin calls the device."""

    name: str | None = Field(default=None, max_length=100)


class StoredPushDevice(PushSubscription):
    name: str | None


class PushDevice(BaseModel):
    """One of the caller's devices: where its push service is, never its endpoint's path or keys."""

    id: str
    name: str | None
    endpoint_host: str
    created_at: str
    # Subscribed again or pushed to successfully (the least recently used is replaced above the limit).
    last_used_at: str | None
    last_success_at: str | None
    # The last failed push's category (`http_403`, `timeout`, `blocked_address`); null once one succeeds.
    last_error: str | None


class PushDeviceList(BaseModel):
    items: list[PushDevice]
