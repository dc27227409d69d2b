"""The account routes' inputs (validated like every API body) and answers (documenting them)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ordercast.services.schemas import Body

MAX_EMAIL = 320
MAX_PASSWORD = 1024
MIN_NEW_PASSWORD = 10


class NewApiKey(Body):
    name: str = Field(default="", max_length=255)


class PasswordChange(Body):
    current: str = Field(max_length=MAX_PASSWORD)
    new: str = Field(min_length=MIN_NEW_PASSWORD, max_length=MAX_PASSWORD)


class ApiKey(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: str | None
    last_used_at: str | None
    # False for keys from ORDERCAST_API_KEYS (remove them there).
    revocable: bool


class CreatedApiKey(ApiKey):
    key: str


class ApiKeyList(BaseModel):
    items: list[ApiKey]


class Session(BaseModel):
    id: str
    created_at: str
    last_seen_at: str
    user_agent: str
    ip: str
    current: bool


class SessionList(BaseModel):
    items: list[Session]


class SessionsEnded(BaseModel):
    ended: int
