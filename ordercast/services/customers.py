"""Customer use cases."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from ordercast.errors import NotFound
from ordercast.ids import is_id
from ordercast.models import Customer
from ordercast.services.schemas import NewCustomer


async def create_customer(draft: NewCustomer) -> tuple[Customer, bool]:
    """The customer with `draft.external_id`, created if new; the flag says whether it was."""
    existing = await Customer.get_or_none(external_id=draft.external_id)
    if existing is not None:
        return existing, False
    try:
        customer = await Customer.create(**draft.model_dump())
    except IntegrityError:
        # Another request created it between our read and insert.
        return await Customer.get(external_id=draft.external_id), False
    return customer, True


async def get_customer(customer_id: str) -> Customer:
    customer = await Customer.get_or_none(id=customer_id) if is_id(customer_id, "cus") else None
    if customer is None:
        raise NotFound(f"no customer {customer_id!r}", details={"id": customer_id})
    return customer
