"""openapi.json is generated from the app's route table: no route can be missing, vocabularies come from models/."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute

from ordercast.config import Settings
from ordercast.models import DeliveryStatus, OrderStatus
from ordercast.server.app import create_app
from ordercast.server.openapi import ApiRoute, build_openapi
from ordercast.server.routes import ROUTES


@pytest.fixture(scope="module")
def app() -> Starlette:
    # Only built, never started: the route table is all the document needs.
    return create_app(Settings(database_url="sqlite://:memory:", telegram_mode="off"))


@pytest.fixture(scope="module")
def document(app: Starlette) -> dict[str, Any]:
    return build_openapi(app.routes)


def http_routes(routes: list[BaseRoute], prefix: str = "") -> list[tuple[str, set[str]]]:
    found: list[tuple[str, set[str]]] = []
    for route in routes:
        if isinstance(route, Mount):
            found += http_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            found.append((prefix + route.path, set(route.methods or ())))
    return found


def test_every_http_route_of_the_app_is_in_the_document_with_its_methods(
    app: Starlette, document: dict[str, Any]
) -> None:
    routes = http_routes(app.routes)
    assert len(routes) >= 30
    for path, methods in routes:
        # Starlette answers HEAD wherever it answers GET; OpenAPI leaves that implied.
        expected = {method.lower() for method in methods - {"HEAD"}}
        assert expected <= set(document["paths"].get(path, {})), path


def test_websocket_routes_are_documented_as_their_handshake(app: Starlette, document: dict[str, Any]) -> None:
    sockets = [route.path for route in app.routes if isinstance(route, WebSocketRoute)]
    assert sockets
    for path in sockets:
        assert "101" in document["paths"][path]["get"]["responses"]


def test_every_route_of_the_route_modules_carries_its_own_operation() -> None:
    plain = [route for route in ROUTES if not isinstance(route, ApiRoute)]
    assert plain == []


def test_status_vocabularies_come_from_the_models_enums(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["OrderStatus"]["enum"] == [status.value for status in OrderStatus]
    assert schemas["DeliveryStatus"]["enum"] == [status.value for status in DeliveryStatus]
    assert schemas["StatusChange"]["properties"]["status"] == {"$ref": "#/components/schemas/OrderStatus"}
    assert schemas["Order"]["properties"]["status"] == {"$ref": "#/components/schemas/OrderStatus"}
    filters = {
        "/api/v1/orders": OrderStatus,
        "/api/v1/deliveries": DeliveryStatus,
    }
    for path, vocabulary in filters.items():
        (status,) = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "status"]
        assert status["schema"]["enum"] == [member.value for member in vocabulary]


def test_every_referenced_schema_is_defined(document: dict[str, Any]) -> None:
    defined = set(document["components"]["schemas"])

    def refs(value: Any) -> set[str]:
        if isinstance(value, dict):
            found = {value["$ref"].rsplit("/", 1)[-1]} if "$ref" in value else set()
            return found.union(*(refs(item) for item in value.values()))
        if isinstance(value, list):
            return set().union(*(refs(item) for item in value))
        return set()

    assert refs(document["paths"]) <= defined


def test_the_document_loads_as_openapi_with_every_operation(document: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(document)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == sum(len(methods) for methods in document["paths"].values())
