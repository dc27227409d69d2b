"""Web Push over HTTP: the VAPID public key, admins' subscriptions, and a test push."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ordercast.server.http import JSON, read_model
from ordercast.server.openapi import ApiRoute, Operation, in_path
from ordercast.server.runtime import runtime
from ordercast.services import push, push_schemas, schemas
from ordercast.services.push_schemas import NewPushDevice
from ordercast.services.schemas import PushEndpoint


async def vapid_public_key(request: Request) -> Response:
    """No credentials needed: the dashboard subscribes with it before anything else."""
    rt = runtime(request)
    key = await rt.vapid.get()
    return JSON({"key": key.public_key}, headers={"Cache-Control": "no-cache"})


async def post_subscription(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    body = await read_model(request, NewPushDevice)
    subscription, created = await push.subscribe(
        principal.user_id, body, allow_private=rt.settings.outbound_allow_private
    )
    return JSON(subscription.as_json(), status_code=201 if created else 200)


async def list_subscriptions(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    return JSON({"items": [device.as_device_json() for device in await push.devices(principal.user_id)]})


async def delete_subscription(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    body = await read_model(request, PushEndpoint)
    await push.unsubscribe(principal.user_id, body.endpoint)
    return Response(status_code=204)


async def delete_subscription_by_id(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    await push.remove_device(principal.user_id, request.path_params["id"])
    return Response(status_code=204)


async def post_test(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    queued = await push.send_test(principal.user_id, publish=rt.publish)
    rt.dispatcher.wake()
    return JSON({"queued": queued})


routes = [
    ApiRoute(
        "GET",
        "/api/v1/push/vapid-public-key",
        vapid_public_key,
        Operation("The VAPID public key to subscribe with", ok=schemas.VapidPublicKey, public=True),
    ),
    ApiRoute(
        "POST",
        "/api/v1/push/subscriptions",
        post_subscription,
        Operation(
            "Store the browser's PushSubscription for the caller (the same endpoint again: 200, updated;"
            f" above {push.MAX_DEVICES}, the least recently used one is replaced)",
            ok=push_schemas.StoredPushDevice,
            status=201,
            also=(200,),
            body=NewPushDevice,
        ),
    ),
    ApiRoute(
        "GET",
        "/api/v1/push/subscriptions",
        list_subscriptions,
        Operation(
            "The caller's devices, newest first (never their endpoints' paths or keys)", ok=push_schemas.PushDeviceList
        ),
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/push/subscriptions",
        delete_subscription,
        Operation("Delete the caller's subscription with this endpoint", status=204, body=PushEndpoint),
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/push/subscriptions/{id}",
        delete_subscription_by_id,
        Operation(
            "Delete one of the caller's subscriptions", status=204, params=[in_path("id", "the subscription's id")]
        ),
    ),
    ApiRoute(
        "POST",
        "/api/v1/push/test",
        post_test,
        Operation("Push a test notification to each of the caller's subscriptions", ok=schemas.PushTest),
    ),
]
