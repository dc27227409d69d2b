"""A message for the clients of a channel: an event (or a reset) at its position, encoded once per transport."""

from __future__ import annotations

import orjson

from ordercast.events import Event, Position
from ordercast.realtime.broker import ResetReason


class Message:
    """One message for the clients of a channel, encoded lazily and at most once per transport."""

    __slots__ = ("_sse", "_ws", "event", "position", "reason")

    def __init__(self, position: Position, event: Event | None = None, reason: ResetReason | None = None) -> None:
        self.position = position
        self.event = event
        self.reason = reason
        self._sse: bytes | None = None
        self._ws: str | None = None

    @property
    def type(self) -> str:
        return self.event.type if self.event is not None else "reset"

    @property
    def sse(self) -> bytes:
        """`id: <position>`, `event: <type>`, `data: <envelope>` and the blank line."""
        if self._sse is None:
            self._sse = b"id: %s\nevent: %s\ndata: %s\n\n" % (
                str(self.position).encode(),
                self.type.encode(),
                self._data(),
            )
        return self._sse

    @property
    def ws(self) -> str:
        """`{"id": "<position>", "type": "<type>", "data": <envelope>}` for a WebSocket text frame."""
        if self._ws is None:
            frame = b'{"id":%s,"type":%s,"data":%s}' % (
                orjson.dumps(str(self.position)),
                orjson.dumps(self.type),
                self._data(),
            )
            self._ws = frame.decode()
        return self._ws

    def _data(self) -> bytes:
        if self.event is not None:
            return self.event.encode()
        return orjson.dumps({"reason": self.reason, "position": str(self.position)})

    def __repr__(self) -> str:
        return f"Message({self.position}, {self.type})"
