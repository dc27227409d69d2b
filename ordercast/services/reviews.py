"""Reviews of delivered orders: each is one transaction with its `review.created` event."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from ordercast.errors import Conflict, Invalid, NotFound
from ordercast.models import Order, OrderStatus, Review
from ordercast.services.outbox import Publish, record_event

MAX_COMMENT = 2000


class Reviews:
    """Leave and read reviews; events are published after commit."""

    def __init__(self, publish: Publish) -> None:
        self._publish = publish

    async def reviewable(self, customer_id: str, *, limit: int = 5) -> list[Order]:
        """The customer's delivered orders without a review, newest first."""
        rows = await Review.filter(customer_id=customer_id).values_list("order_id", flat=True)
        reviewed = {str(order_id) for order_id in rows}
        orders = await Order.filter(customer_id=customer_id, status=OrderStatus.DELIVERED.value).order_by("-id")
        return [order for order in orders if order.id not in reviewed][:limit]

    async def check(self, customer_id: str, order_id: str) -> Order:
        """The order if this customer may review it now; `NotFound` or `Conflict` otherwise."""
        order = await Order.get_or_none(id=order_id, customer_id=customer_id)
        if order is None:
            raise NotFound(f"no order {order_id!r}")
        if order.status != OrderStatus.DELIVERED.value:
            raise Conflict("only delivered orders can be reviewed")
        if await Review.exists(order_id=order.id):
            raise Conflict("this order has been reviewed already")
        return order

    async def create(self, *, customer_id: str, order_id: str, stars: int, comment: str | None) -> Review:
        if not 1 <= stars <= 5:
            raise Invalid.field("stars", "must be 1 to 5")
        comment = comment.strip()[:MAX_COMMENT] if comment else None
        try:
            async with in_transaction() as conn:
                order = await Order.select_for_update().using_db(conn).get_or_none(id=order_id, customer_id=customer_id)
                if order is None:
                    raise NotFound(f"no order {order_id!r}")
                if order.status != OrderStatus.DELIVERED.value:
                    raise Conflict("only delivered orders can be reviewed")
                if await Review.filter(order_id=order.id).using_db(conn).exists():
                    raise Conflict("this order has been reviewed already")
                review = await Review.create(
                    order_id=order.id, customer_id=customer_id, stars=stars, comment=comment or None, using_db=conn
                )
                event = await record_event(conn, "review.created", {"review": review.as_json()}, order=order)
        except IntegrityError:
            raise Conflict("this order has been reviewed already") from None
        self._publish([event])
        return review
