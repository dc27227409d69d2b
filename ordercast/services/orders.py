"""Order use cases: each is one transaction that writes the change and its event."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from ordercast.errors import Invalid, NotFound
from ordercast.events import Event
from ordercast.ids import is_id, is_order_number, new_order_number
from ordercast.models import Customer, IdempotencyKey, Order, OrderStatus
from ordercast.models.money import MAX_AMOUNT, format_amount, is_currency, parse_amount, quantize
from ordercast.services import idempotency
from ordercast.services.outbox import Publish, events_of_order, record_event
from ordercast.services.schemas import NewOrder, OrderPatch, StatusChange


def ref_filter(ref: str) -> dict[str, str]:
    """How to find an order by its id, its number, or `#number`."""
    ref = ref.strip()
    if ref.startswith("ord_"):
        if not is_id(ref, "ord"):
            raise NotFound(f"no order {ref!r}", details={"ref": ref})
        return {"id": ref}
    number = ref.removeprefix("#").upper()
    if not is_order_number(number):
        raise NotFound(f"no order {ref!r}", details={"ref": ref})
    return {"number": number}


async def find_order(ref: str, *, customer_id: str | None = None) -> Order:
    """The order `ref` names; with `customer_id`, only if it is that customer's."""
    query = Order.filter(**ref_filter(ref))
    if customer_id is not None:
        query = query.filter(customer_id=customer_id)
    order = await query.first()
    if order is None:
        raise NotFound(f"no order {ref!r}", details={"ref": ref})
    return order


class Orders:
    """Create orders and move them through their lifecycle; events are published after commit.

    `publish` hands the committed events to the publisher without waiting on the broker: the
    change is durable at commit, and the sweeper publishes whatever a crash leaves behind.
    """

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def create(self, draft: NewOrder, *, claim: IdempotencyKey | None = None) -> Order:
        if not is_currency(draft.currency):
            raise Invalid.field("currency", f"{draft.currency} is not an ISO 4217 currency")
        items = []
        total = Decimal(0)
        for index, item in enumerate(draft.items):
            unit_price = parse_amount(item.unit_price, draft.currency, field=f"items.{index}.unit_price")
            line_total = quantize(unit_price * item.quantity, draft.currency)
            total += line_total
            items.append(
                {
                    "sku": item.sku,
                    "name": item.name,
                    "quantity": item.quantity,
                    "unit_price": format_amount(unit_price, draft.currency),
                    "total": format_amount(line_total, draft.currency),
                }
            )
        if total > MAX_AMOUNT:
            raise Invalid.field("items", f"the order total must not exceed {MAX_AMOUNT}")
        if not is_id(draft.customer_id, "cus") or not await Customer.exists(id=draft.customer_id):
            raise Invalid.field("customer_id", f"no customer {draft.customer_id!r}")
        for attempt in range(5):
            try:
                async with in_transaction() as conn:
                    order = await Order.create(
                        number=new_order_number(),
                        customer_id=draft.customer_id,
                        currency=draft.currency,
                        total=total,
                        items=items,
                        external_id=draft.external_id,
                        using_db=conn,
                    )
                    event = await record_event(
                        conn, "order.created", {"order": order.as_json(internal=False)}, order=order
                    )
                    if claim is not None:
                        response = idempotency.StoredResponse(201, order.as_json())
                        await idempotency.complete(conn, claim, response)
                break
            except IntegrityError:
                # 40 random bits per number: a collision is rare, and a fresh number settles it.
                if attempt == 4:
                    raise
        self._publish([event])
        return order

    async def get(self, ref: str, *, customer_id: str | None = None) -> Order:
        return await find_order(ref, customer_id=customer_id)

    async def page(
        self,
        *,
        status: OrderStatus | None,
        customer_id: str | None,
        limit: int,
        before_id: str | None,
    ) -> list[Order]:
        """Newest first (ids sort by creation time); `limit + 1` rows tell whether more follow."""
        query = Order.all()
        if status is not None:
            query = query.filter(status=status.value)
        if customer_id is not None:
            query = query.filter(customer_id=customer_id)
        if before_id is not None:
            query = query.filter(id__lt=before_id)
        return await query.order_by("-id").limit(limit + 1)

    async def patch(self, ref: str, patch: OrderPatch) -> Order:
        fields = {name: getattr(patch, name) for name in patch.model_fields_set}
        events: list[Event] = []
        async with in_transaction() as conn:
            order = await self._lock(conn, ref)
            changed = [name for name, value in fields.items() if getattr(order, name) != value]
            if changed:
                for name in changed:
                    setattr(order, name, fields[name])
                order.version += 1
                await order.save(using_db=conn)
                data = {"order": order.as_json(internal=False), "changed": sorted(changed)}
                events.append(await record_event(conn, "order.updated", data, order=order))
        self._publish(events)
        return order

    async def change_status(self, ref: str, change: StatusChange) -> Order:
        async with in_transaction() as conn:
            order = await self._lock(conn, ref)
            previous = order.transition(to=OrderStatus(change.status))
            for name in ("tracking_number", "note"):
                if name in change.model_fields_set:
                    setattr(order, name, getattr(change, name))
            await order.save(using_db=conn)
            data = {"order": order.as_json(internal=False), "from": previous.value, "to": order.status}
            event = await record_event(conn, "order.status_changed", data, order=order)
        self._publish([event])
        return order

    async def history(self, ref: str) -> Sequence[Event]:
        order = await find_order(ref)
        return await events_of_order(order.id)

    @staticmethod
    async def _lock(conn: object, ref: str) -> Order:
        # FOR UPDATE serialises changes to one order on PostgreSQL; SQLite runs one write
        # transaction at a time, so there the lock is the database's own.
        order = await Order.select_for_update().using_db(conn).filter(**ref_filter(ref)).first()  # type: ignore[arg-type]
        if order is None:
            raise NotFound(f"no order {ref!r}", details={"ref": ref})
        return order
