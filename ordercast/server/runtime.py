"""The running parts one app shares, built in the lifespan and reached from every request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from starlette.requests import HTTPConnection

from ordercast.config import Settings
from ordercast.server.auth import Authenticator, CustomerTokens, Sessions
from ordercast.server.clients import ClientAddresses
from ordercast.server.metrics import Metrics
from ordercast.server.signatures import StandardWebhooks, StripeSignatures
from ordercast.services.accounts import KeyRing
from ordercast.services.logins import Logins
from ordercast.services.orders import Orders
from ordercast.services.outbox import Publish
from ordercast.services.payments import Payments

if TYPE_CHECKING:
    from ordercast.bot.app import TelegramBot
    from ordercast.notify.dispatch import Dispatcher
    from ordercast.notify.push import CurrentKey
    from ordercast.realtime.broker import Broker
    from ordercast.realtime.hub import Hub


@dataclass(slots=True)
class Runtime:
    settings: Settings
    metrics: Metrics
    auth: Authenticator
    tokens: CustomerTokens
    sessions: Sessions
    keys: KeyRing
    logins: Logins
    clients: ClientAddresses
    orders: Orders
    broker: Broker
    hub: Hub
    dispatcher: Dispatcher
    # Hands committed events to the publisher (and wakes the senders when they cause deliveries).
    publish: Publish
    vapid: CurrentKey
    payments: Payments
    # None when that provider's secret isn't configured.
    payment_signatures: StandardWebhooks | None
    stripe_signatures: StripeSignatures | None
    telegram: TelegramBot | None = None

    async def position(self, channel: str) -> str:
        """The channel's current stream position, as a client would resume from it."""
        return str(await self.broker.current(channel))


def runtime(conn: HTTPConnection) -> Runtime:
    return cast(Runtime, conn.state.runtime)
