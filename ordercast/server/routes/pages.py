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
from ordercast.services.account_schemas import MAX_EMAIL, MAX_PASSWORD

WEB = Path(__file__).resolve().parents[2] / "web"
templates = Jinja2Templates(directory=WEB / "templates")


def _safe_next(target: str | None) -> str:
    # Only same-site paths: `//evil.example` and `https://…` would make the login an open redirect.
    if not target or len(target) > 2048 or not target.startswith("/") or target.startswith("//") or "\\" in target:
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
    email, password = form.get("email", "").strip().lower(), form.get("password", "")
    next_path = _safe_next(form.get("next"))
    if len(email) > MAX_EMAIL or len(password) > MAX_PASSWORD:
        # Refused before anything stores, hashes or logs it (a 100 kB email used to reach the database).
        error = f"The email may have at most {MAX_EMAIL} characters and the password {MAX_PASSWORD}."
        context = {"next": next_path, "error": error}
        return templates.TemplateResponse(request, "login.html", context, status_code=400)
    user = None
    ip = rt.clients.of(request)
    if email and password and "\x00" not in email + password:
        user = await rt.logins.login(email, password, ip)
    if user is None:
        context = {"next": next_path, "error": "Wrong email or password."}
        return templates.TemplateResponse(request, "login.html", context, status_code=401)
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        await rt.sessions.open(user.id, user_agent=request.headers.get("user-agent", ""), ip=ip),
        max_age=int(rt.settings.session_max_age),
        httponly=True,
        samesite="lax",
        secure=rt.settings.secure_cookies,
    )
    return response


async def logout(request: Request) -> Response:
    rt = runtime(request)
    session = await rt.auth.session(request)
    if session is not None:
        if not rt.auth.same_origin(request):
            raise CsrfFailed()
        await rt.sessions.end(session.id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, httponly=True, samesite="lax", secure=rt.settings.secure_cookies)
    return response


async def dashboard(request: Request) -> Response:
    rt = runtime(request)
    session = await rt.auth.session(request)
    if session is None:
        return RedirectResponse("/login?next=/", status_code=303)
    # The stream carries every admin's notification events: the page shows those of its own admin.
    return templates.TemplateResponse(request, "dashboard.html", {"user_id": session.user_id})


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
