"""The error tree: one root, a code and an HTTP status per class, mapped to JSON in one handler."""

from __future__ import annotations

from typing import Any, ClassVar


class OrdercastError(Exception):
    """Root of every error ordercast reports to a client."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    default_message: ClassVar[str] = "internal error"

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class Malformed(OrdercastError):
    status, code, default_message = 400, "malformed", "the request is malformed"


class Unauthenticated(OrdercastError):
    status, code, default_message = 401, "unauthenticated", "credentials are missing or invalid"


class TokenExpired(Unauthenticated):
    code, default_message = "token_expired", "the token has expired"


class Forbidden(OrdercastError):
    status, code, default_message = 403, "forbidden", "these credentials do not allow this"


class CsrfFailed(Forbidden):
    code, default_message = "csrf", "the request's Origin is not this server's"


class NotFound(OrdercastError):
    status, code, default_message = 404, "not_found", "not found"


class MethodNotAllowed(OrdercastError):
    status, code, default_message = 405, "method_not_allowed", "method not allowed"


class Conflict(OrdercastError):
    status, code, default_message = 409, "conflict", "the request conflicts with the current state"


class InvalidTransition(Conflict):
    code, default_message = "invalid_transition", "this status change is not allowed"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"
    default_message = "this Idempotency-Key was used with another request body"


class IdempotencyKeyInFlight(Conflict):
    code = "idempotency_key_in_flight"
    default_message = "a request with this Idempotency-Key is still being processed"


class TelegramOff(Conflict):
    code, default_message = "telegram_off", "the Telegram bot is not configured"


class TooLarge(OrdercastError):
    status, code, default_message = 413, "too_large", "the request body is too large"


class Invalid(OrdercastError):
    status, code, default_message = 422, "invalid", "the request is invalid"

    @classmethod
    def field(cls, path: str, problem: str) -> Invalid:
        return cls(f"{path}: {problem}", details={"fields": {path: problem}})


class RateLimited(OrdercastError):
    status, code, default_message = 429, "rate_limited", "too many requests"

    def __init__(self, retry_after: int, message: str | None = None) -> None:
        super().__init__(
            message,
            details={"retry_after": retry_after},
            headers={"Retry-After": str(retry_after)},
        )


class Unavailable(OrdercastError):
    status, code, default_message = 503, "unavailable", "a dependency is unavailable"
