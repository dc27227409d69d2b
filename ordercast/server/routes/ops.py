"""Operations: health, readiness, metrics and the OpenAPI document."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from tortoise import connections

from ordercast import running
from ordercast.server.http import JSON
from ordercast.server.openapi import ApiRoute, Operation, openapi_document
from ordercast.server.runtime import runtime
from ordercast.services import schemas


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
    # The process's background loops by name; of several with one name, one that is not alive speaks for all.
    loops: dict[str, str] = {}
    alive = True
    for loop in running.loops():
        if not loop.alive:
            alive = False
            loops[loop.name] = loop.status
        else:
            loops.setdefault(loop.name, loop.status)
    ready = alive and all(value == "ok" for value in checks.values())
    return JSON(
        {"status": "ready" if ready else "unavailable", "checks": checks, "loops": loops},
        status_code=200 if ready else 503,
    )


async def metrics(request: Request) -> Response:
    rt = runtime(request)
    await rt.auth.admin(request)
    return PlainTextResponse(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    return JSON(openapi_document(request.app))


routes = [
    ApiRoute("GET", "/healthz", healthz, Operation("The process is up", ok=schemas.Health, public=True)),
    ApiRoute(
        "GET",
        "/readyz",
        readyz,
        Operation(
            "Whether this process can serve: its database, broker and background loops (503 naming what is not)",
            ok=schemas.Readiness,
            also=(503,),
            public=True,
        ),
    ),
    ApiRoute("GET", "/metrics", metrics, Operation("Prometheus metrics", media_type="text/plain")),
    ApiRoute(
        "GET",
        "/api/v1/openapi.json",
        openapi,
        Operation("This document, generated from the routes", ok={"type": "object"}),
    ),
]
