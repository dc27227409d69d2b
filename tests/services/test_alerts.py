"""`raise_alert` inside a caller's transaction: one open alert per key, occurrences, the admins told once."""

from __future__ import annotations

import asyncio
import secrets

from tortoise.transactions import in_transaction

from ordercast.models import AdminUser, Alert, Delivery, Notification, NotificationPreference, PushSubscription
from ordercast.services.alerts import raise_alert, resolve_key


async def admin(email: str | None = None) -> AdminUser:
    return await AdminUser.create(email=email or f"{secrets.token_hex(4)}@example.com")


async def subscribe(user: AdminUser) -> PushSubscription:
    endpoint = f"https://push.example.com/{secrets.token_hex(8)}"
    return await PushSubscription.create(
        user=user, endpoint=endpoint, origin="https://push.example.com", p256dh="p", auth="a"
    )


async def test_a_new_alert_notifies_every_admin_and_a_repeat_adds_an_occurrence(database: str) -> None:
    first, second = await admin(), await admin()
    phone, laptop = await subscribe(first), await subscribe(first)
    key = f"test:{secrets.token_hex(4)}"
    async with in_transaction() as conn:
        events = await raise_alert(conn, key=key, severity="warning", title="Disk full", message="Free some space.")
    raised, *notified = events
    assert raised.type == "alert.raised"
    alert = raised.data["alert"]
    assert (alert["key"], alert["occurrences"], alert["severity"], alert["resolved_at"]) == (key, 1, "warning", None)
    assert alert["first_seen"] == alert["last_seen"]
    mine = {event.data["user_id"]: event for event in notified if event.data["user_id"] in (first.id, second.id)}
    assert set(mine) == {first.id, second.id}
    for event in mine.values():
        assert event.type == "notification.created"
        assert event.data["unread_count"] == 1
        assert event.data["notification"]["category"] == "alerts"
        assert event.data["notification"]["title"] == "Disk full"
    assert raised.caused == tuple(notified)
    pushes = await Delivery.filter(event_id=raised.id, channel="push").values_list("recipient", flat=True)
    assert sorted(pushes) == sorted([phone.id, laptop.id])

    async with in_transaction() as conn:
        [again] = await raise_alert(conn, key=key, severity="critical", title="Disk full", message="Still full.")
    repeat = again.data["alert"]
    assert (repeat["id"], repeat["occurrences"], repeat["severity"]) == (alert["id"], 2, "critical")
    assert repeat["first_seen"] == alert["first_seen"] < repeat["last_seen"]
    assert repeat["message"] == "Still full."
    assert await Notification.filter(user_id=first.id).count() == 1
    assert await Delivery.filter(event_id=again.id).count() == 0
    assert (await AdminUser.get(id=first.id)).unread_notifications == 1


async def test_after_resolving_the_same_key_opens_a_new_alert(database: str) -> None:
    await admin()
    key = f"test:{secrets.token_hex(4)}"
    async with in_transaction() as conn:
        [opened, *_] = await raise_alert(conn, key=key, severity="error", title="A", message="a")
    async with in_transaction() as conn:
        [resolved] = await resolve_key(conn, key, note="it went away")
    assert resolved.type == "alert.resolved"
    assert resolved.data["alert"]["resolution_note"] == "it went away"
    assert resolved.data["alert"]["resolved_at"] is not None
    async with in_transaction() as conn:
        [reopened, *notified] = await raise_alert(conn, key=key, severity="error", title="A", message="a")
    assert reopened.data["alert"]["id"] != opened.data["alert"]["id"]
    assert reopened.data["alert"]["occurrences"] == 1
    assert notified
    assert await Alert.filter(key=key).count() == 2
    async with in_transaction() as conn:
        assert await resolve_key(conn, "test:never-raised", note="-") == []


async def test_preferences_choose_the_channels(database: str) -> None:
    quiet, pushed_only, default = await admin(), await admin(), await admin()
    for user in (quiet, pushed_only, default):
        await subscribe(user)
    await NotificationPreference.create(user=quiet, category="alerts", push=False, in_app=False)
    await NotificationPreference.create(user=pushed_only, category="alerts", push=True, in_app=False)
    await NotificationPreference.create(user=default, category="orders", push=False, in_app=False)
    async with in_transaction() as conn:
        [raised, *notified] = await raise_alert(
            conn, key=f"test:{secrets.token_hex(4)}", severity="info", title="T", message="M"
        )
    told = {event.data["user_id"] for event in notified}
    assert default.id in told
    assert not told & {quiet.id, pushed_only.id}
    rows = await Delivery.filter(event_id=raised.id).values_list("recipient", "status", "last_error")
    subscriptions = dict(await PushSubscription.all().values_list("id", "user_id"))
    pushed = {subscriptions[sub] for sub, status, _ in rows if status == "pending"}
    assert pushed >= {pushed_only.id, default.id}
    assert quiet.id not in pushed
    # The quiet admin's device has its row too, skipped, saying why.
    assert [(status, reason) for sub, status, reason in rows if subscriptions[sub] == quiet.id] == [
        ("skipped", "preferences")
    ]


async def test_concurrent_raises_of_one_key_count_every_occurrence(database: str) -> None:
    key = f"test:{secrets.token_hex(4)}"

    async def raise_once() -> None:
        async with in_transaction() as conn:
            await raise_alert(conn, key=key, severity="error", title="Flaky", message="again")

    await asyncio.gather(*(raise_once() for _ in range(20)))
    [alert] = await Alert.filter(key=key)
    assert alert.occurrences == 20
    assert alert.open_key == key
