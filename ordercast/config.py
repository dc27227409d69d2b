"""The one Settings object: every `ORDERCAST_*` variable, read once, never at import."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """ordercast's configuration (environment variables prefixed `ORDERCAST_`)."""

    # A variable that is set but empty counts as unset: compose files pass `VAR=` for "not configured".
    model_config = SettingsConfigDict(env_prefix="ORDERCAST_", extra="ignore", frozen=True, env_ignore_empty=True)

    database_url: str = "sqlite://./ordercast.db"
    redis_url: str | None = None
    redis_prefix: str = "ordercast"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    base_url: str = ""
    secret_key: SecretStr | None = None

    admin_email: str | None = None
    admin_password: SecretStr | None = None
    api_keys: SecretStr | None = None

    telegram_token: SecretStr | None = None
    telegram_mode: Literal["polling", "webhook", "off"] = "polling"
    telegram_api_url: str = "https://api.telegram.org"
    telegram_webhook_secret: SecretStr | None = None

    vapid_private_key: SecretStr | None = None
    vapid_subject: str = "mailto:admin@localhost"
    payment_webhook_secret: SecretStr | None = None
    stripe_webhook_secret: SecretStr | None = None
    # How long an answered payment webhook id is remembered (a retry of it then has no effect).
    webhook_receipt_ttl: float = Field(default=7 * 86_400, gt=0)
    # Lifts the outbound address rule and allows http:// targets (development and tests).
    outbound_allow_private: bool = False
    # Its old name, from when it covered push endpoints alone: still works, with the wider scope.
    push_allow_insecure: bool = False

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    history_size: int = Field(default=10_000, ge=1)
    history_ttl: float = Field(default=86_400, gt=0)
    ping_interval: float = Field(default=15, gt=0)
    connection_queue: int = Field(default=1000, ge=1)
    # A stream write the client doesn't take within this many seconds cuts the connection.
    send_timeout: float = Field(default=10, gt=0)
    # A request (headers and body) that hasn't arrived whole this many seconds after its first byte is cut.
    request_read_timeout: float = Field(default=30, gt=0)
    ws_max_frame_bytes: int = Field(default=65_536, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"

    # Tuning: every interval a test would wait on is a setting, so tests can shrink it.
    login_max_failures: int = Field(default=10, ge=1)
    login_max_failures_per_ip: int = Field(default=50, ge=1)
    login_window: float = Field(default=900, gt=0)
    # argon2 hashes at once per process (each ~190 ms of CPU and 64 MiB); a login beyond them gets 429.
    password_hash_concurrency: int = Field(default=2, ge=1)
    # Comma-separated proxy addresses/CIDRs whose X-Forwarded-For names the client.
    trusted_proxies: str | None = None
    session_max_age: float = Field(default=7 * 86_400, gt=0)
    idempotency_ttl: float = Field(default=86_400, gt=0)
    idempotency_lease: float = Field(default=60, gt=0)
    shutdown_timeout: float = Field(default=8, gt=0)
    sweep_interval: float = Field(default=1.0, gt=0)
    sweep_grace: float = Field(default=2.0, ge=0)
    db_pool_size: int = Field(default=10, ge=1)
    # PostgreSQL: a statement (or a wait for a pooled connection behind slow ones) is cut after this.
    db_statement_timeout: float = Field(default=10, gt=0)
    db_connect_timeout: float = Field(default=5, gt=0)
    auth_cache_ttl: float = Field(default=30, ge=0)
    # Event streams open at once per session or customer token (per process); API keys: uncapped unless set.
    max_streams_per_credential: int = Field(default=50, ge=1)
    max_streams_per_api_key: int | None = Field(default=None, ge=1)
    # Test-only: hold the after-commit publish back, so a test can kill the process in that window.
    publish_delay: float = Field(default=0, ge=0)
    demo_interval: float = Field(default=2.0, gt=0)

    # Deliveries (the queue every channel shares) and the Telegram bot.
    delivery_lease: float = Field(default=30, gt=0)
    delivery_claim_interval: float = Field(default=1.0, gt=0)
    delivery_concurrency: int = Field(default=50, ge=1)
    delivery_retry_base: float = Field(default=1.0, gt=0)
    delivery_retry_cap: float = Field(default=300, gt=0)
    delivery_max_attempts: int = Field(default=10, ge=1)
    # A channel down for its credentials (Telegram refusing the token) is probed this often.
    channel_probe_interval: float = Field(default=60, gt=0)
    telegram_rate_global: float = Field(default=30, gt=0)
    telegram_rate_chat: float = Field(default=1, gt=0)
    telegram_send_timeout: float = Field(default=10, gt=0)
    telegram_poll_timeout: int = Field(default=10, ge=0)
    telegram_poll_lock_ttl: float = Field(default=30, gt=0)
    telegram_start_retry_cap: float = Field(default=60, gt=0)
    telegram_link_ttl: int = Field(default=86_400, ge=1)
    # What the status messages promise: packing within this many hours, delivery this many days after dispatch.
    packing_hours: int = Field(default=24, ge=1)
    delivery_days: int = Field(default=3, ge=1)

    # Web Push, the notification centre and alerts.
    push_ttl: int = Field(default=86_400, ge=0, le=28 * 86_400)
    push_send_timeout: float = Field(default=10, gt=0)
    push_connections: int = Field(default=100, ge=1)
    vapid_reload_interval: float = Field(default=60, gt=0)
    # Retention (days may be fractions: tests shrink them): deliveries, read notifications, resolved
    # alerts and ended sessions are kept this long; unread notifications for the longer TTL.
    retention_days: float = Field(default=30, gt=0)
    notification_ttl_days: float = Field(default=90, gt=0)
    retention_interval: float = Field(default=3600, gt=0)
    # A channel whose sends fail this many times in a row (timeouts, 5xx) raises an alert.
    alert_after_failures: int = Field(default=10, ge=1)

    @field_validator("base_url", "telegram_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("vapid_subject")
    @classmethod
    def _vapid_subject(cls, value: str) -> str:
        # RFC 8292: how a push service reaches the sender, a mailto: or an https: URI.
        if not re.fullmatch(r"(mailto:[^@\s]+@[^@\s]+|https://\S+)", value):
            raise ValueError("must be a mailto: address or an https:// URL")
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        # It signs sessions and customer tokens: a short one can be guessed offline from any token.
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "must be at least 32 characters (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return value

    @field_validator("telegram_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        # What Telegram accepts as a webhook's secret_token.
        if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", value.get_secret_value()):
            raise ValueError("must be 1 to 256 characters of A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str | None) -> str | None:
        for item in (value or "").split(","):
            if item.strip():
                try:
                    ipaddress.ip_network(item.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"{item.strip()!r} is not an IP address or CIDR") from None
        return value

    @model_validator(mode="after")
    def _old_names(self) -> Settings:
        if self.push_allow_insecure:
            object.__setattr__(self, "outbound_allow_private", True)
        return self

    @model_validator(mode="after")
    def _default_base_url(self) -> Settings:
        if not self.base_url:
            host = f"[{self.host}]" if ":" in self.host else self.host
            object.__setattr__(self, "base_url", f"http://{host}:{self.port}")
        return self

    @property
    def payment_secret_list(self) -> list[str]:
        """`ORDERCAST_PAYMENT_WEBHOOK_SECRET`: space-separated, several during a rotation."""
        if self.payment_webhook_secret is None:
            return []
        return self.payment_webhook_secret.get_secret_value().split()

    @property
    def api_key_list(self) -> list[str]:
        if self.api_keys is None:
            return []
        return [key.strip() for key in self.api_keys.get_secret_value().split(",") if key.strip()]

    @property
    def trusted_proxy_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        items = (self.trusted_proxies or "").split(",")
        return [ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip()]

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_token is not None and self.telegram_mode != "off"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def secure_cookies(self) -> bool:
        return self.base_url.startswith("https://")
