"""Browser pages: the login form, logout, the dashboard, and its PWA service worker and manifest."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from ordercast.errors import CsrfFailed, Malformed
from ordercast.server.auth import SESSION_COOKIE
from ordercast.server.openapi import ApiRoute, Operation, in_query
from ordercast.server.runtime import runtime
from ordercast.services import schemas
from ordercast.services.accounts import login

WEB = Path(__file__).resolve().parents[2] / "web"
templates = Jinja2Templates(directory=WEB / "templates")


def _safe_next(target: str | None) -> str:
    # Only same-site paths: `//evil.example` and `https://…` would make the login an open redirect.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def login_form(request: Request) -> Response:
    next_path = _safe_next(request.query_params.get("next"))
    return templates.TemplateResponse(request, "login.html", {"next": next_path, "error": None})


async def login_submit(request: Request) -> Response:
    rt = runtime(request)
    origin = request.headers.get("origin")
    if origin is not None and not rt.auth.same_origin(request):
        raise CsrfFailed()
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise Malformed("the login form must be sent as application/x-www-form-urlencoded")
    try:
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True, max_num_fields=10))
    except (UnicodeDecodeError, ValueError):
        raise Malformed("the login form could not be read") from None
    email = form.get("email", "").strip().lower()
    next_path = _safe_next(form.get("next"))
    user = None
    if email and form.get("password") and "\x00" not in email + form["password"]:
        user = await login(
            email,
            form["password"],
            max_failures=rt.settings.login_max_failures,
            window=rt.settings.login_window,
        )
    if user is None:
        context = {"next": next_path, "error": "Wrong email or password."}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        rt.sessions.issue(user.id),
        max_age=int(rt.settings.session_max_age),
        httponly=True,
        samesite="lax",
        secure=rt.settings.secure_cookies,
    )
    return response


async def logout(request: Request) -> Response:
    rt = runtime(request)
    if rt.auth.session_user(request) is not None and not rt.auth.same_origin(request):
        raise CsrfFailed()
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=rt.settings.secure_cookies)
    return response


async def dashboard(request: Request) -> Response:
    rt = runtime(request)
    user_id = rt.auth.session_user(request)
    if user_id is None:
        return RedirectResponse("/login?next=/", status_code=303)
    # The stream carries every admin's notification events: the page shows those of its own admin.
    return templates.TemplateResponse(request, "dashboard.html", {"user_id": user_id})


async def service_worker(request: Request) -> Response:
    """At the root, so its scope is the whole dashboard; never cached stale (browsers check it for updates)."""
    return FileResponse(WEB / "static" / "sw.js", media_type="text/javascript", headers={"Cache-Control": "no-cache"})


async def manifest(request: Request) -> Response:
    return FileResponse(WEB / "static" / "manifest.webmanifest", media_type="application/manifest+json")


_HTML = "text/html"
routes = [
    ApiRoute(
        "GET",
        "/login",
        login_form,
        Operation("The sign-in form", media_type=_HTML, params=[in_query("next", {"type": "string"})], public=True),
    ),
    ApiRoute(
        "POST",
        "/login",
        login_submit,
        Operation(
            "Sign in: 303 to `next` with the session cookie, or 401 and the form again",
            status=303,
            also=(401,),
            media_type=_HTML,
            body=schemas.LoginForm,
            body_media_type="application/x-www-form-urlencoded",
            public=True,
        ),
    ),
    ApiRoute("POST", "/logout", logout, Operation("End the session; 303 to the sign-in form", status=303, public=True)),
    ApiRoute(
        "GET",
        "/",
        dashboard,
        Operation(
            "The dashboard (without a session: 303 to the sign-in form)", media_type=_HTML, also=(303,), public=True
        ),
    ),
    ApiRoute(
        "GET",
        "/sw.js",
        service_worker,
        Operation("The dashboard's service worker", media_type="text/javascript", public=True),
    ),
    ApiRoute(
        "GET",
        "/manifest.webmanifest",
        manifest,
        Operation("The PWA manifest", ok={"type": "object"}, media_type="application/manifest+json", public=True),
    ),
]
