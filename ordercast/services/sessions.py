"""Admin session rows: opened at login, touched as they are used, ended by logout or revocation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ordercast.events import format_time
from ordercast.models import AdminSession

# How stale `last_seen_at` may get before a lookup writes it: a write per request would cost more than the read.
TOUCH_EVERY = timedelta(seconds=60)
MAX_USER_AGENT = 512


async def open_session(user_id: str, *, user_agent: str, ip: str) -> str:
    """A new session for the admin; its id."""
    now = datetime.now(UTC)
    session = await AdminSession.create(
        user_id=user_id, created_at=now, last_seen_at=now, user_agent=user_agent[:MAX_USER_AGENT], ip=ip[:64]
    )
    return session.id


def _active(max_age: float) -> dict[str, Any]:
    return {"ended_at__isnull": True, "created_at__gte": datetime.now(UTC) - timedelta(seconds=max_age)}


async def session_user(session_id: str, *, max_age: float) -> str | None:
    """The admin of an active session (not ended, not too old, admin not disabled), noting it was seen."""
    rows = await AdminSession.filter(id=session_id, user__disabled_at__isnull=True, **_active(max_age)).values_list(
        "user_id", "last_seen_at"
    )
    if not rows:
        return None
    user_id, last_seen = rows[0]
    now = datetime.now(UTC)
    if last_seen is None or now - last_seen > TOUCH_EVERY:
        await AdminSession.filter(id=session_id).update(last_seen_at=now)
    return str(user_id)


async def list_sessions(user_id: str, *, max_age: float) -> list[AdminSession]:
    """The admin's active sessions, newest first."""
    return await AdminSession.filter(user_id=user_id, **_active(max_age)).order_by("-created_at")


def session_json(session: AdminSession, *, current: str | None) -> dict[str, Any]:
    return {
        "id": session.id,
        "created_at": format_time(session.created_at),
        "last_seen_at": format_time(session.last_seen_at),
        "user_agent": session.user_agent,
        "ip": session.ip,
        "current": session.id == current,
    }


async def end_session(session_id: str, *, user_id: str | None = None) -> bool:
    """End one session (of `user_id`, if given); whether there was an active one to end."""
    query = AdminSession.filter(id=session_id, ended_at__isnull=True)
    if user_id is not None:
        query = query.filter(user_id=user_id)
    return bool(await query.update(ended_at=datetime.now(UTC)))


async def end_sessions(user_id: str, *, keep: str | None = None) -> int:
    """End every active session of the admin but `keep`; how many were ended."""
    query = AdminSession.filter(user_id=user_id, ended_at__isnull=True)
    if keep is not None:
        query = query.exclude(id=keep)
    return await query.update(ended_at=datetime.now(UTC))
