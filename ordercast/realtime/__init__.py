"""Realtime: the broker (memory or Redis), publishing and the sweeper, the hub, SSE and WebSocket endpoints.

Knows events, channels and ordering keys, not orders.
"""

from __future__ import annotations

from ordercast.realtime.broker import Broker, Placed, Reset, Resumed, create_broker
from ordercast.realtime.holders import Grant
from ordercast.realtime.hub import Hub, Subscription
from ordercast.realtime.message import Message
from ordercast.realtime.publisher import Outbox, Publisher, Sweeper
from ordercast.realtime.sse import sse_endpoint
from ordercast.realtime.transport import Authorize
from ordercast.realtime.ws import ws_endpoint

__all__ = [
    "Authorize",
    "Broker",
    "Grant",
    "Hub",
    "Message",
    "Outbox",
    "Placed",
    "Publisher",
    "Reset",
    "Resumed",
    "Subscription",
    "Sweeper",
    "create_broker",
    "sse_endpoint",
    "ws_endpoint",
]
