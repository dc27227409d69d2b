"""JSON in and out: orjson responses, bodies parsed into the use cases' pydantic models."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ordercast.errors import Invalid, Malformed

BodyT = TypeVar("BodyT", bound=BaseModel)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def read_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or 400 `malformed`."""
    raw = await request.body()
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Malformed(f"the body is not JSON: {exc.msg}") from None
    if not isinstance(value, dict):
        raise Malformed("the body must be a JSON object")
    return value


def parse_model(model: type[BodyT], value: dict[str, Any]) -> BodyT:
    """`value` validated as `model`, or 422 `invalid` with each field's problem."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        fields: dict[str, str] = {}
        for error in exc.errors(include_url=False):
            path = ".".join(str(part) for part in error["loc"]) or "body"
            message = "unknown field" if error["type"] == "extra_forbidden" else error["msg"]
            fields.setdefault(path, message)
        summary = "; ".join(f"{path}: {problem}" for path, problem in fields.items())
        raise Invalid(summary, details={"fields": fields}) from None


async def read_model(request: Request, model: type[BodyT], *, optional: bool = False) -> BodyT:
    """The body validated as `model`; with `optional`, no body (or only white space) means `model()`."""
    if optional and not (await request.body()).strip():
        return model()
    return parse_model(model, await read_object(request))
