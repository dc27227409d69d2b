"""uvicorn's httptools protocol with a read deadline: a request must arrive whole (headers and body)
within `read_timeout` seconds of its first byte, and a new connection must start one as quickly.

uvicorn has no such timeout: a client trickling bytes (slowloris) would hold its connection and the
handler waiting on its body for ever.
"""

from __future__ import annotations

import asyncio
import logging

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("ordercast.server")


class DeadlineHttpToolsProtocol(HttpToolsProtocol):
    read_timeout = 30.0
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.parser.should_upgrade() and self._should_upgrade():
            self._disarm()  # a WebSocket: its frames and pings have their own limits

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(self.read_timeout, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            logger.info("closing a connection whose request did not arrive within %.0f s", self.read_timeout)
            self.transport.close()


def http_protocol(read_timeout: float) -> type[HttpToolsProtocol]:
    """The protocol class for `uvicorn.Config(http=…)` with this read deadline."""
    return type("DeadlineHttpToolsProtocol", (DeadlineHttpToolsProtocol,), {"read_timeout": read_timeout})
