"""`WS /api/v1/ws`: the event stream as WebSocket text frames."""

from __future__ import annotations

from contextlib import AsyncExitStack

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from ordercast.errors import OrdercastError
from ordercast.realtime.hub import CloseReason, Hub, Subscription
from ordercast.realtime.transport import Authorize, Outlet, watch_disconnect

TOO_SLOW = 4008
# 4000 + 401, as a refused upgrade without the denial extension: the credential is over, sign in again.
CREDENTIAL_OVER = 4001
# 1012 "service restart": reconnect (elsewhere) and resume; 1013 "try again later".
_CLOSE_CODES: dict[CloseReason, int] = {
    "overflow": TOO_SLOW,
    "shutdown": 1012,
    "unavailable": 1013,
    "expired": CREDENTIAL_OVER,
    "revoked": CREDENTIAL_OVER,
}


def ws_endpoint(
    hub: Hub,
    authorize: Authorize,
    *,
    send_timeout: float = 10.0,
    batch_size: int = 256,
) -> ASGIApp:
    """An ASGI app streaming the authorised channel as WebSocket text frames (mount with `WebSocketRoute`).

    Protocol-level pings are the server's job (uvicorn's `ws_ping_interval`).
    """
    return _EventSocket(hub, authorize, send_timeout, batch_size)


class _EventSocket:
    def __init__(self, hub: Hub, authorize: Authorize, send_timeout: float, batch_size: int) -> None:
        self._hub = hub
        self._authorize = authorize
        self._send_timeout = send_timeout
        self._batch_size = batch_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        if (await receive())["type"] != "websocket.connect":
            return
        async with AsyncExitStack() as stack:
            try:
                grant = await self._authorize(websocket)
                last_event_id = websocket.query_params.get("last_event_id") or None
                subscription = await stack.enter_async_context(self._hub.subscribe(grant, last_event_id))
            except OrdercastError as error:
                await _refuse(websocket, error)
                return
            await send({"type": "websocket.accept"})
            await self._stream(subscription, receive, send)

    async def _stream(self, subscription: Subscription, receive: Receive, send: Send) -> None:
        outlet = Outlet(send, subscription, send_timeout=self._send_timeout)
        watcher = watch_disconnect(receive, subscription, "websocket.disconnect")
        try:
            async with outlet.watching():
                while True:
                    batch = await subscription.next_batch(None, self._batch_size)
                    if subscription.closed:
                        break
                    # One frame per message (the protocol's unit), sent back to back.
                    for message in batch:
                        if not await outlet.write({"type": "websocket.send", "text": message.ws}):
                            return
                reason = subscription.close_reason
                code = _CLOSE_CODES.get(reason) if reason is not None else None
                if code is not None:
                    await outlet.write({"type": "websocket.close", "code": code})
        finally:
            outlet.ended()
            watcher.cancel()


async def _refuse(websocket: WebSocket, error: OrdercastError) -> None:
    """Refuse the upgrade with the error's HTTP status (or, without the denial extension, a 4xxx close)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = JSONResponse(error.to_json(), status_code=error.status, headers=error.headers)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=4000 + error.status, reason=error.code)
