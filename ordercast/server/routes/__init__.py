"""The HTTP routes, one module per area of the API; each module speaks HTTP only and calls use cases."""

from __future__ import annotations

from starlette.routing import BaseRoute

from ordercast.server.routes import account, centre, chats, delivery_log, devices, ops, pages, payment_webhooks, shop

ROUTES: list[BaseRoute] = [
    *shop.routes,
    *delivery_log.routes,
    *centre.routes,
    *devices.routes,
    *chats.routes,
    *payment_webhooks.routes,
    *ops.routes,
    *pages.routes,
    *account.routes,
]
