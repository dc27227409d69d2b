"""Web Push over HTTP: the VAPID public key, admins' subscriptions, and a test push."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordercast.server.http import JSON, read_model
from ordercast.server.runtime import runtime
from ordercast.services import push
from ordercast.services.schemas import NewPushSubscription, PushEndpoint


async def vapid_public_key(request: Request) -> Response:
    """No credentials needed: the dashboard subscribes with it before anything else."""
    rt = runtime(request)
    key = await rt.vapid.get()
    return JSON({"key": key.public_key}, headers={"Cache-Control": "no-cache"})


async def post_subscription(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    body = await read_model(request, NewPushSubscription)
    subscription, created = await push.subscribe(
        principal.user_id, body, allow_insecure=rt.settings.push_allow_insecure
    )
    return JSON(subscription.as_json(), status_code=201 if created else 200)


async def delete_subscription(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    body = await read_model(request, PushEndpoint)
    await push.unsubscribe(principal.user_id, body.endpoint)
    return Response(status_code=204)


async def post_test(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    queued = await push.send_test(principal.user_id, publish=rt.publish)
    rt.dispatcher.wake()
    return JSON({"queued": queued})


routes = [
    Route("/api/v1/push/vapid-public-key", vapid_public_key, methods=["GET"]),
    Route("/api/v1/push/subscriptions", post_subscription, methods=["POST"]),
    Route("/api/v1/push/subscriptions", delete_subscription, methods=["DELETE"]),
    Route("/api/v1/push/test", post_test, methods=["POST"]),
]
