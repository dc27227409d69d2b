"""Admin sessions: the dashboard's signed cookie names one of these rows; ending the row signs it out."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from ordercast.ids import new_id
from ordercast.models.tables import AdminUser


def session_id() -> str:
    return new_id("ses")


class AdminSession(Model):
    """One signed-in browser of an admin, from login until logout, revocation or its maximum age."""

    id = fields.CharField(primary_key=True, max_length=40, default=session_id)
    user: fields.ForeignKeyRelation[AdminUser] = fields.ForeignKeyField(
        "models.AdminUser", related_name="sessions", on_delete=fields.CASCADE
    )
    user_id: str
    created_at = fields.DatetimeField()
    # Written at most once a minute (on a lookup the process's cache missed), not on every request.
    last_seen_at = fields.DatetimeField()
    user_agent = fields.CharField(max_length=512, default="")
    ip = fields.CharField(max_length=64, default="")
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "sessions"
        indexes = (("user_id", "ended_at"),)
