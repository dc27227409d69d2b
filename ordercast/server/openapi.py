"""`/api/v1/openapi.json`, generated from the app's route table: each route carries its own operation.

A route module lists `ApiRoute("GET", "/api/v1/orders/{ref}", get_order, Operation("Get an order", ok=Order))`;
`build_openapi(app.routes)` walks the table, so a route can't be missing from the document. A plain
Starlette route still appears (tagged `undocumented`, with what its endpoint's docstring says).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from enum import Enum
from http import HTTPStatus
from typing import Any
from weakref import WeakKeyDictionary

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from ordercast import __version__

JSON_MEDIA = "application/json"
Schema = dict[str, Any]


class ErrorBody(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class Error(BaseModel):
    error: ErrorBody


# Every operation may answer these, as `Error`.
_ERRORS = {
    400: "malformed request",
    401: "missing or invalid credentials",
    403: "these credentials do not allow this",
    404: "not found",
    409: "conflict",
    413: "body too large",
    422: "invalid fields",
    429: "rate limited",
}


@dataclasses.dataclass(frozen=True, slots=True)
class Operation:
    """One route's OpenAPI operation: what it does, what it takes, and what it answers on success."""

    summary: str
    # The success answer's body: a model, a JSON schema, or None (a string, unless the media type is JSON).
    ok: type[BaseModel] | Schema | None = None
    status: int = 200
    # More statuses answering the same kind of body (200 for "created, or the existing one"; 503; 401).
    also: tuple[int, ...] = ()
    media_type: str = JSON_MEDIA
    body: type[BaseModel] | None = None
    body_required: bool = True
    body_media_type: str = JSON_MEDIA
    # Query and header parameters; a path's `{name}`s are added unless given here (to describe them).
    params: Sequence[Schema] = ()
    # No credentials needed.
    public: bool = False
    # The area it is listed under: by default the endpoint's module (`shop`, `centre`, `pages`, …).
    tag: str | None = None


def _area(endpoint: object) -> str:
    module = getattr(endpoint, "__module__", None) or type(endpoint).__module__
    return str(module).rsplit(".", 1)[-1]


class ApiRoute(Route):
    """A Starlette `Route` for one method that carries its OpenAPI `Operation`."""

    def __init__(self, method: str, path: str, endpoint: Callable[..., Any], operation: Operation) -> None:
        super().__init__(path, endpoint, methods=[method])
        self.operation = operation if operation.tag else dataclasses.replace(operation, tag=_area(endpoint))


class ApiWebSocketRoute(WebSocketRoute):
    """A Starlette `WebSocketRoute` that carries its `Operation` (documented as the GET handshake, 101)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], operation: Operation) -> None:
        super().__init__(path, endpoint)
        self.operation = operation if operation.tag else dataclasses.replace(operation, tag=_area(endpoint))


def in_path(name: str, description: str | None = None) -> Schema:
    described = {"description": description} if description else {}
    return {"name": name, "in": "path", "required": True, **described, "schema": {"type": "string"}}


def in_query(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def in_header(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "header", "required": False, "schema": schema}


def choices(vocabulary: type[Enum]) -> Schema:
    """A string schema allowing each value of `vocabulary` (an enum from `ordercast.models`)."""
    return {"type": "string", "enum": [member.value for member in vocabulary]}


LIMIT = in_query("limit", {"type": "integer", "minimum": 1, "maximum": 200})
CURSOR = in_query("cursor", {"type": "string"})
PAGE = (LIMIT, CURSOR)

# The event streams, for the routes `create_app` builds (they hold the app's hub).
_RESUME = {"type": "string", "description": "resume after this event id (an unknown one answers a `reset`)"}
_STREAM_PARAMS = (
    in_query("last_event_id", _RESUME),
    in_query("token", {"type": "string", "description": "a customer token (browsers' streams can't set headers)"}),
)
EVENT_STREAM = Operation(
    "The caller's event stream as Server-Sent Events (admins: every event; a customer token: their own)",
    media_type="text/event-stream",
    params=(*_STREAM_PARAMS, in_header("Last-Event-ID", _RESUME)),
    tag="streams",
)
EVENT_SOCKET = Operation(
    "The caller's event stream over a WebSocket, one event per text frame",
    status=101,
    params=_STREAM_PARAMS,
    tag="streams",
)


def _undocumented(route: Route | WebSocketRoute, status: int) -> Operation:
    doc = getattr(route.endpoint, "__doc__", None) or ""
    return Operation(doc.strip().split("\n")[0] or route.name, status=status, tag="undocumented")


def _operations(routes: Iterable[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str, Operation]]:
    """(path, method, operation) for each method of each route; Starlette's implied HEAD is left implied."""
    for route in routes:
        if isinstance(route, Mount):
            yield from _operations(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            operation = route.operation if isinstance(route, ApiRoute) else _undocumented(route, 200)
            for method in sorted(set(route.methods or ()) - {"HEAD"}):
                yield prefix + route.path, method.lower(), operation
        elif isinstance(route, WebSocketRoute):
            operation = route.operation if isinstance(route, ApiWebSocketRoute) else _undocumented(route, 101)
            yield prefix + route.path, "get", operation


def _has_content(status: int) -> bool:
    # A 1xx, a 204 and a redirect answer with no body.
    return status >= 200 and status != 204 and not 300 <= status < 400


def _render(path: str, operation: Operation, schema: Callable[[type[BaseModel] | Schema], Schema]) -> Schema:
    responses: Schema = {}
    for status in (operation.status, *operation.also):
        answer: Schema = {"description": HTTPStatus(status).phrase}
        body = operation.ok if operation.ok is not None else {"type": "string"}
        if _has_content(status) and (operation.ok is not None or operation.media_type != JSON_MEDIA):
            answer["content"] = {operation.media_type: {"schema": schema(body)}}
        responses[str(status)] = answer
    for code, text in _ERRORS.items():
        responses.setdefault(str(code), {"description": text, "content": {JSON_MEDIA: {"schema": schema(Error)}}})
    given = {param["name"] for param in operation.params if param["in"] == "path"}
    params = [
        *(in_path(name) for name in re.findall(r"{(\w+)[^}]*}", path) if name not in given),
        *operation.params,
    ]
    rendered: Schema = {"tags": [operation.tag], "summary": operation.summary, "responses": responses}
    if params:
        rendered["parameters"] = params
    if operation.body is not None:
        content = {operation.body_media_type: {"schema": schema(operation.body)}}
        rendered["requestBody"] = {"required": operation.body_required, "content": content}
    if operation.public:
        rendered["security"] = []
    return rendered


def build_openapi(routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """The OpenAPI document of a route table (`app.routes`): every method of every route."""
    found = list(_operations(routes))
    models: dict[type[BaseModel], None] = {Error: None}
    for _, _, operation in found:
        for model in (operation.ok, operation.body):
            if isinstance(model, type):
                models[model] = None
    refs, definitions = models_json_schema(
        [(model, "validation") for model in models], ref_template="#/components/schemas/{model}"
    )

    def schema(model: type[BaseModel] | Schema) -> Schema:
        return dict(refs[(model, "validation")]) if isinstance(model, type) else model

    paths: dict[str, Schema] = {}
    for path, method, operation in found:
        # OpenAPI paths name their parameters bare: Starlette's `{id:int}` is `{id}`.
        bare = re.sub(r"{(\w+):\w+}", r"{\1}", path)
        paths.setdefault(bare, {})[method] = _render(bare, operation, schema)
    return {
        "openapi": "3.1.0",
        "info": {"title": "ordercast", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }


_documents: WeakKeyDictionary[Starlette, dict[str, Any]] = WeakKeyDictionary()


def openapi_document(app: Starlette) -> dict[str, Any]:
    """`app`'s document, built on first use (its route table is complete by then) and kept."""
    if app not in _documents:
        _documents[app] = build_openapi(app.routes)
    return _documents[app]
