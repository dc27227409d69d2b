"""Log lines: query secrets redacted, JSON lines when asked for."""

from __future__ import annotations

import io
import logging
import logging.config
import os
import subprocess
import sys
from pathlib import Path
from typing import BinaryIO

import httpx
import orjson
import pytest

from ordercast.server.logs import log_config, redact
from tests.conftest import ROOT, free_port, wait_for, wait_until_ready


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"GET /api/v1/events?token=oct_abc.def HTTP/1.1" 200', '"GET /api/v1/events?token=[redacted] HTTP/1.1" 200'),
        ("/api/v1/ws?last_event_id=a:1&token=oct_x", "/api/v1/ws?last_event_id=a:1&token=[redacted]"),
        ("/api/v1/orders?status=paid", "/api/v1/orders?status=paid"),
        ("/api/v1/events?%74oken=oct_abc", "/api/v1/events?%74oken=[redacted]"),
        ("/api/v1/events?TOKEN=oct_abc&x=1", "/api/v1/events?TOKEN=[redacted]&x=1"),
        ("/api/v1/events?a=1&%2574oken=oct_abc", "/api/v1/events?a=1&%2574oken=[redacted]"),
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


async def test_query_tokens_never_reach_uvicorns_own_access_log(tmp_path: Path) -> None:
    """`uvicorn --factory` logs with uvicorn's configuration, not ordercast's: the app redacts anyway."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ORDERCAST_")},
        "ORDERCAST_DATABASE_URL": f"sqlite://{tmp_path / 'factory.db'}",
        "ORDERCAST_TELEGRAM_MODE": "off",
    }
    log_path = tmp_path / "uvicorn.log"
    with log_path.open("wb") as log:
        process = start_factory(port, env, log)
        try:
            base = f"http://127.0.0.1:{port}"
            await wait_until_ready(process, base, log_path.read_text)
            async with httpx.AsyncClient(base_url=base, timeout=5) as client:
                for query in ("token=oct_plainsecret", "%74oken=oct_encodedsecret", "a=1&TOKEN=oct_uppersecret"):
                    assert (await client.get(f"/api/v1/events?{query}")).status_code == 401
            await wait_for(lambda: log_path.read_text().count("/api/v1/events?") >= 3, message="the access log lines")
        finally:
            process.terminate()
            process.wait(15)
    output = log_path.read_text()
    assert "[redacted]" in output
    for secret in ("oct_plainsecret", "oct_encodedsecret", "oct_uppersecret"):
        assert secret not in output


def start_factory(port: int, env: dict[str, str], log: BinaryIO) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "uvicorn", "--factory", "ordercast.server.app:create_app", "--port", str(port)]
    return subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
