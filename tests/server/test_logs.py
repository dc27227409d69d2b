"""Log lines: query secrets redacted, JSON lines when asked for."""

from __future__ import annotations

import io
import logging
import logging.config

import orjson
import pytest

from ordercast.server.logs import log_config, redact


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"GET /api/v1/events?token=oct_abc.def HTTP/1.1" 200', '"GET /api/v1/events?token=[redacted] HTTP/1.1" 200'),
        ("/api/v1/ws?last_event_id=a:1&token=oct_x", "/api/v1/ws?last_event_id=a:1&token=[redacted]"),
        ("/api/v1/orders?status=paid", "/api/v1/orders?status=paid"),
    ],
)
def test_query_tokens_are_redacted(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_json_format_writes_one_object_per_line_without_the_token() -> None:
    logging.config.dictConfig(log_config("info", "json"))
    handler = logging.getLogger("uvicorn.access").handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:1", "GET", "/e?token=oct_s", "1.1", 200
    )
    entry = orjson.loads(stream.getvalue().strip())
    assert entry["logger"] == "uvicorn.access"
    assert entry["level"] == "info"
    assert "oct_s" not in entry["message"]
    assert "token=[redacted]" in entry["message"]
