"""The caller's own account: their sessions, their password and their API keys."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ordercast.errors import Conflict, NotFound
from ordercast.ids import is_id
from ordercast.server.auth import Principal
from ordercast.server.http import JSON, read_model
from ordercast.server.openapi import ApiRoute, Operation, in_path
from ordercast.server.runtime import Runtime, runtime
from ordercast.services import account_schemas as shapes
from ordercast.services import accounts, sessions
from ordercast.services.account_schemas import NewApiKey, PasswordChange


async def _admin(request: Request) -> tuple[Runtime, Principal, str]:
    rt = runtime(request)
    principal = await rt.auth.admin(request)
    assert principal.user_id is not None
    return rt, principal, principal.user_id


async def list_sessions(request: Request) -> Response:
    rt, principal, user_id = await _admin(request)
    found = await sessions.list_sessions(user_id, max_age=rt.sessions.max_age)
    return JSON({"items": [sessions.session_json(s, current=principal.session_id) for s in found]})


async def end_session(request: Request) -> Response:
    rt, _, user_id = await _admin(request)
    session_id = request.path_params["id"]
    if not is_id(session_id, "ses") or not await rt.sessions.end(session_id, user_id=user_id):
        raise NotFound(f"no active session {session_id}")
    return Response(status_code=204)


async def end_other_sessions(request: Request) -> Response:
    rt, principal, user_id = await _admin(request)
    ended = await rt.sessions.end_others(user_id, keep=principal.session_id)
    return JSON({"ended": ended})


async def change_password(request: Request) -> Response:
    rt, principal, user_id = await _admin(request)
    body = await read_model(request, PasswordChange)
    await rt.logins.change_password(user_id, body.current, body.new, rt.clients.of(request))
    # Whoever else held a session may have known the old password: they sign in again.
    ended = await rt.sessions.end_others(user_id, keep=principal.session_id)
    return JSON({"ended": ended})


async def list_api_keys(request: Request) -> Response:
    rt, _, user_id = await _admin(request)
    items = [accounts.api_key_json(key) for key in await accounts.list_api_keys(user_id)]
    if user_id == rt.keys.service_admin_id:
        items = [key.as_json() for key in rt.keys.env_keys] + items
    return JSON({"items": items})


async def create_api_key(request: Request) -> Response:
    _, _, user_id = await _admin(request)
    body = await read_model(request, NewApiKey)
    record, key = await accounts.issue_api_key(user_id, body.name)
    return JSON({**accounts.api_key_json(record), "key": key}, status_code=201)


async def revoke_api_key(request: Request) -> Response:
    rt, _, user_id = await _admin(request)
    key_id = request.path_params["id"]
    if user_id == rt.keys.service_admin_id and rt.keys.is_env_key(key_id):
        raise Conflict("this key comes from ORDERCAST_API_KEYS: remove it there to revoke it")
    await accounts.revoke_api_key(key_id, user_id=user_id)
    rt.keys.forget(key_id)
    return Response(status_code=204)


routes = [
    ApiRoute(
        "GET",
        "/api/v1/me/sessions",
        list_sessions,
        Operation("The caller's active dashboard sessions, newest first", ok=shapes.SessionList),
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/me/sessions/{id}",
        end_session,
        Operation("End one of the caller's sessions (that browser is signed out at once)", status=204),
    ),
    ApiRoute(
        "POST",
        "/api/v1/me/sessions/revoke-others",
        end_other_sessions,
        Operation("End every session of the caller but the current one", ok=shapes.SessionsEnded),
    ),
    ApiRoute(
        "POST",
        "/api/v1/me/password",
        change_password,
        Operation(
            "Change the caller's password (a wrong `current`: 403); every other session ends",
            ok=shapes.SessionsEnded,
            body=PasswordChange,
        ),
    ),
    ApiRoute(
        "GET",
        "/api/v1/api-keys",
        list_api_keys,
        Operation("The caller's API keys (never the keys themselves)", ok=shapes.ApiKeyList),
    ),
    ApiRoute(
        "POST",
        "/api/v1/api-keys",
        create_api_key,
        Operation(
            "Create an API key for the caller: the answer holds the key, once",
            ok=shapes.CreatedApiKey,
            status=201,
            body=NewApiKey,
        ),
    ),
    ApiRoute(
        "DELETE",
        "/api/v1/api-keys/{id}",
        revoke_api_key,
        Operation("Revoke one of the caller's API keys", status=204, params=[in_path("id", "the key's `key_…` id")]),
    ),
]
