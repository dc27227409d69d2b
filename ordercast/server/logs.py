"""Logging: text or one JSON object per line; query tokens never reach a log line."""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

import orjson

# A query parameter: its name (in any spelling: `%74oken` is `token`) and its value.
_QUERY_PARAMETER = re.compile(r"((?:^|[?&;\s])([^=&;\s\"?]+)=)([^&;\s\"]*)")
# `token=` (customer tokens for EventSource) and anything else secret-looking.
_SECRET_NAMES = frozenset({"token", "key", "secret", "password", "api_key", "access_token"})


def _redact_parameter(match: re.Match[str]) -> str:
    name = unquote_plus(unquote_plus(match.group(2))).strip().lower()
    return f"{match.group(1)}[redacted]" if name in _SECRET_NAMES else match.group(0)


def redact(text: str) -> str:
    return _QUERY_PARAMETER.sub(_redact_parameter, text)


class RedactSecrets(logging.Filter):
    """Rewrites the record's message and arguments with query secrets replaced."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact_server_logs() -> None:
    """Redact query secrets on uvicorn's loggers whoever configured them (`uvicorn --factory` uses its own
    logging config, not ours): a filter on the logger itself sees every record logged there."""
    for name in ("uvicorn.access", "uvicorn.error", "ordercast"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactSecrets) for existing in logger.filters):
            logger.addFilter(RedactSecrets())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def log_config(level: str, fmt: str) -> dict[str, Any]:
    """A `logging.config.dictConfig` document for ordercast and uvicorn alike."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if fmt == "json" else {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactSecrets}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "ordercast": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.access": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "tortoise": {"handlers": ["default"], "level": "WARNING", "propagate": False},
        },
    }
