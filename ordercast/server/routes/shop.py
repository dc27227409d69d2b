"""The REST API of customers, orders and reviews."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ordercast.errors import Malformed, NotFound
from ordercast.events import ADMIN_CHANNEL, customer_channel, format_time
from ordercast.ids import is_id
from ordercast.models import Order, OrderStatus, Review
from ordercast.server.http import JSON, parse_model, read_model, read_object
from ordercast.server.openapi import PAGE, ApiRoute, Operation, choices, in_header, in_path, in_query
from ordercast.server.pagination import decode_cursor, encode_cursor, parse_limit
from ordercast.server.runtime import runtime
from ordercast.services import idempotency, schemas
from ordercast.services.customers import create_customer, get_customer
from ordercast.services.orders import find_order
from ordercast.services.schemas import NewCustomer, NewOrder, OrderPatch, StatusChange, StreamTokenRequest

MAX_IDEMPOTENCY_KEY = 255


async def post_customer(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    customer, created = await create_customer(await read_model(request, NewCustomer))
    return JSON(customer.as_json(), status_code=201 if created else 200)


async def get_customer_route(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    customer = await get_customer(request.path_params["customer_id"])
    return JSON(customer.as_json())


async def post_stream_token(request: Request) -> Response:
    rt = runtime(request)
    await rt.auth.admin(request)
    body = await read_model(request, StreamTokenRequest, optional=True)
    customer = await get_customer(request.path_params["customer_id"])
    token, expires_at = rt.tokens.issue(customer.id, body.ttl_seconds)
    return JSON({"token": token, "expires_at": format_time(expires_at)}, status_code=201)


async def post_order(request: Request) -> Response:
    rt = runtime(request)
    admin = await rt.auth.admin(request)
    raw = await read_object(request)
    draft = parse_model(NewOrder, raw)
    key = request.headers.get("idempotency-key")
    if key is None:
        order = await rt.orders.create(draft)
        return JSON(order.as_json(), status_code=201)
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
        raise Malformed(f"Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters")
    assert admin.user_id is not None
    claimed = await idempotency.claim(
        admin.user_id,
        key,
        idempotency.request_hash(raw),
        lease=rt.settings.idempotency_lease,
        ttl=rt.settings.idempotency_ttl,
    )
    if isinstance(claimed, idempotency.StoredResponse):
        return JSON(claimed.body, status_code=claimed.status, headers={"Idempotent-Replayed": "true"})
    try:
        order = await rt.orders.create(draft, claim=claimed)
    except BaseException:
        await idempotency.release(claimed)
        raise
    return JSON(order.as_json(), status_code=201)


async def list_orders(request: Request) -> Response:
    rt = runtime(request)
    principal = await rt.auth.principal(request)
    query = request.query_params
    status_text = query.get("status")
    if status_text is not None and status_text not in OrderStatus._value2member_map_:
        raise Malformed(f"unknown status {status_text!r}", details={"parameter": "status"})
    customer_id = query.get("customer_id")
    # A customer sees only their own orders: asking for another's (or a malformed id) matches nothing.
    foreign = principal.customer_id is not None and customer_id not in (None, principal.customer_id)
    foreign = foreign or (customer_id is not None and not is_id(customer_id, "cus"))
    if principal.customer_id is not None:
        customer_id = principal.customer_id
    limit = parse_limit(query)
    filters = {"status": status_text, "customer_id": customer_id}
    cursor = query.get("cursor")
    before_id = decode_cursor(cursor, filters) if cursor else None
    # Read the stream position before the query: events after it may or may not be in the page,
    # but none before it is missing, so resuming from it loses nothing.
    channel = ADMIN_CHANNEL if principal.customer_id is None else customer_channel(principal.customer_id)
    position = await rt.position(channel)
    rows = (
        []
        if foreign
        else await rt.orders.page(
            status=OrderStatus(status_text) if status_text else None,
            customer_id=customer_id,
            limit=limit,
            before_id=before_id,
        )
    )
    page, more = rows[:limit], len(rows) > limit
    return JSON(
        {
            "items": [order.as_json(internal=principal.customer_id is None) for order in page],
            "next_cursor": encode_cursor(page[-1].id, filters) if more else None,
            "position": position,
        }
    )


async def get_order(request: Request) -> Response:
    principal = await runtime(request).auth.principal(request)
    order = await find_order(request.path_params["ref"], customer_id=principal.customer_id)
    return JSON(order.as_json(internal=principal.customer_id is None))


async def patch_order(request: Request) -> Response:
    rt = runtime(request)
    await rt.auth.admin(request)
    patch = await read_model(request, OrderPatch)
    order = await rt.orders.patch(request.path_params["ref"], patch)
    return JSON(order.as_json())


async def post_status(request: Request) -> Response:
    rt = runtime(request)
    await rt.auth.admin(request)
    change = await read_model(request, StatusChange)
    order = await rt.orders.change_status(request.path_params["ref"], change)
    rt.metrics.status_changes.labels(order.status).inc()
    return JSON(order.as_json())


async def order_events(request: Request) -> Response:
    rt = runtime(request)
    await rt.auth.admin(request)
    events = await rt.orders.history(request.path_params["ref"])
    return JSON({"items": [event.envelope() for event in events]})


async def list_reviews(request: Request) -> Response:
    await runtime(request).auth.admin(request)
    query = Review.all()
    order_ref = request.query_params.get("order_id")
    if order_ref is not None:
        try:
            order: Order | None = await find_order(order_ref)
        except NotFound:
            order = None
        if order is None:
            return JSON({"items": []})
        query = query.filter(order_id=order.id)
    reviews = await query.order_by("-created_at").limit(200)
    return JSON({"items": [review.as_json() for review in reviews]})


_CUSTOMER = in_path("customer_id", "the customer's id")
_REF = in_path("ref", "the order's id, its number, or `#number` percent-encoded")
_IDEMPOTENCY_KEY = in_header("Idempotency-Key", {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY})
routes = [
    ApiRoute(
        "POST",
        "/api/v1/customers",
        post_customer,
        Operation(
            "Create a customer (or return the one with this external_id)",
            ok=schemas.Customer,
            status=201,
            also=(200,),
            body=NewCustomer,
        ),
    ),
    ApiRoute(
        "GET",
        "/api/v1/customers/{customer_id}",
        get_customer_route,
        Operation("Get a customer", ok=schemas.Customer, params=[_CUSTOMER]),
    ),
    ApiRoute(
        "POST",
        "/api/v1/customers/{customer_id}/stream-token",
        post_stream_token,
        Operation(
            "Issue a customer token for their event stream and orders",
            ok=schemas.StreamToken,
            status=201,
            body=StreamTokenRequest,
            body_required=False,
            params=[_CUSTOMER],
        ),
    ),
    ApiRoute(
        "POST",
        "/api/v1/orders",
        post_order,
        Operation("Create an order", ok=schemas.Order, status=201, body=NewOrder, params=[_IDEMPOTENCY_KEY]),
    ),
    ApiRoute(
        "GET",
        "/api/v1/orders",
        list_orders,
        Operation(
            "List orders, newest first",
            ok=schemas.OrderPage,
            params=[in_query("status", choices(OrderStatus)), in_query("customer_id", {"type": "string"}), *PAGE],
        ),
    ),
    ApiRoute("GET", "/api/v1/orders/{ref}", get_order, Operation("Get an order", ok=schemas.Order, params=[_REF])),
    ApiRoute(
        "PATCH",
        "/api/v1/orders/{ref}",
        patch_order,
        Operation("Change an order's tracking number or note", ok=schemas.Order, body=OrderPatch, params=[_REF]),
    ),
    ApiRoute(
        "POST",
        "/api/v1/orders/{ref}/status",
        post_status,
        Operation("Change an order's status", ok=schemas.Order, body=StatusChange, params=[_REF]),
    ),
    ApiRoute(
        "GET",
        "/api/v1/orders/{ref}/events",
        order_events,
        Operation("An order's events, oldest first", ok=schemas.EventList, params=[_REF]),
    ),
    ApiRoute(
        "GET",
        "/api/v1/reviews",
        list_reviews,
        Operation("Reviews, newest first", ok=schemas.ReviewList, params=[in_query("order_id", {"type": "string"})]),
    ),
]
