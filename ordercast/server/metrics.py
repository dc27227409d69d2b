"""Prometheus metrics: one registry per app; requests, status changes, deliveries and their latency, push answers,
event streams ended."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ordercast.realtime.subscription import CloseReason

# Why a stream ended, as the `reason` label says it (API.md); one that simply finished isn't counted.
_DISCONNECT_REASONS: dict[CloseReason, str] = {
    "overflow": "slow",
    "stalled": "slow",
    "expired": "expired",
    "revoked": "revoked",
    "disconnected": "client",
    "shutdown": "shutdown",
    # The broker's history couldn't fill a gap: not one of API.md's reasons, but worth seeing.
    "unavailable": "unavailable",
}


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ordercast_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ordercast_http_request_duration_seconds",
            "Time to the end of the response, by route template and method",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.status_changes = Counter(
            "ordercast_order_status_changes",
            "Order status changes by the status entered",
            ["status"],
            registry=self.registry,
        )
        self.webhooks = Counter(
            "ordercast_payment_webhooks",
            "Payment webhooks by outcome (applied, duplicate, ignored, or the error code)",
            ["outcome"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "ordercast_deliveries",
            "Delivery attempts by channel and result (sent, retrying, failed, skipped)",
            ["channel", "result"],
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "ordercast_delivery_latency_seconds",
            "From the event to the provider accepting its message, by channel",
            ["channel"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )

        self.push_responses = Counter(
            "ordercast_push_responses",
            "Answers of push services by host and HTTP status (or the error that stood for one)",
            ["service", "status"],
            registry=self.registry,
        )

        self.stream_disconnects = Counter(
            "ordercast_stream_disconnects",
            "Event streams (SSE and WebSocket) ended by the server or the client, by reason",
            ["reason"],
            registry=self.registry,
        )
        for reason in ("slow", "expired", "revoked", "client", "shutdown"):
            self.stream_disconnects.labels(reason)

    def stream_closed(self, reason: CloseReason) -> None:
        label = _DISCONNECT_REASONS.get(reason)
        if label is not None:
            self.stream_disconnects.labels(label).inc()

    def observe_push(self, service: str, status: str) -> None:
        self.push_responses.labels(service, status).inc()

    def observe_delivery(self, channel: str, result: str, latency: float | None) -> None:
        self.deliveries.labels(channel, result).inc()
        if latency is not None:
            self.delivery_latency.labels(channel).observe(latency)


class RequestMetrics:
    """Pure ASGI middleware; streaming routes are counted when they start, not timed."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def timed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)
