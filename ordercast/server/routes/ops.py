"""Operations: health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from tortoise import connections

from ordercast.server.http import JSON
from ordercast.server.openapi import build_openapi
from ordercast.server.runtime import runtime


async def healthz(request: Request) -> Response:
    return JSON({"status": "ok"})


async def readyz(request: Request) -> Response:
    rt = runtime(request)
    checks: dict[str, str] = {}
    try:
        await connections.get("default").execute_query("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001 — any failure means "not ready", reported as such
        checks["database"] = f"unreachable: {type(exc).__name__}"
    try:
        await rt.broker.ping()
        checks["broker"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["broker"] = f"unreachable: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JSON({"status": "ready" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503)


async def metrics(request: Request) -> Response:
    rt = runtime(request)
    await rt.auth.admin(request)
    return PlainTextResponse(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)


_OPENAPI = build_openapi()


async def openapi(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    return JSON(_OPENAPI)


routes = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/api/v1/openapi.json", openapi, methods=["GET"]),
]
