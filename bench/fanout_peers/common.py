"""What the Python peers of bench/fanout.py share: settings from the environment and the uvicorn run."""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp


@dataclass(frozen=True)
class PeerSettings:
    port: int
    redis_url: str
    channel: str
    ping_interval: float

    @classmethod
    def from_env(cls) -> PeerSettings:
        return cls(
            port=int(os.environ["FANOUT_PORT"]),
            redis_url=os.environ["FANOUT_REDIS_URL"],
            channel=os.environ.get("FANOUT_CHANNEL", "fanout"),
            ping_interval=float(os.environ.get("FANOUT_PING_INTERVAL", "15")),
        )


def run(app: ASGIApp, settings: PeerSettings) -> None:
    """One uvicorn process on uvloop + httptools, as `ordercast serve` runs."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=settings.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        backlog=8192,
        timeout_graceful_shutdown=2,
    )
