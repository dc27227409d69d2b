"""`/orders`, `/order <number>`, `/help`, and what an unknown command or stray text gets."""

from __future__ import annotations

from telegram import Update

from ordercast.bot import texts
from ordercast.bot.caller import Context, LinkedCaller, caller, linked, say
from ordercast.errors import NotFound
from ordercast.models import Order
from ordercast.notify.templates.customer import order_details, order_line
from ordercast.notify.templates.texts import Value
from ordercast.services.orders import find_order

EXAMPLE_NUMBER = "A1B2C3D4"
LIST_SIZE = 10


@linked
async def orders(update: Update, context: Context, who: LinkedCaller) -> None:
    recent = await Order.filter(customer_id=who.customer.id).order_by("-id").limit(LIST_SIZE)
    if not recent:
        await say(context, who, who.texts.fill(texts.NO_ORDERS))
        return
    lines = [
        who.texts.fill(texts.YOUR_ORDERS),
        *(order_line(order.as_json(internal=False), who.texts) for order in recent),
    ]
    lines += ["", who.texts.fill(texts.MORE_ORDERS)]
    await say(context, who, "\n".join(lines))


@linked
async def order(update: Update, context: Context, who: LinkedCaller) -> None:
    if not context.args:
        await say(context, who, who.texts.fill(texts.ORDER_USAGE, example=EXAMPLE_NUMBER))
        return
    ref = context.args[0].removeprefix("#")
    try:
        found = await find_order(ref, customer_id=who.customer.id)
    except NotFound:
        # Another customer's order is "not found" too: nobody learns which numbers exist.
        await say(context, who, who.texts.fill(texts.ORDER_NOT_FOUND, number=Value(f"#{ref[:40]}")))
        return
    await say(context, who, order_details(found.as_json(internal=False), who.texts))


async def help_command(update: Update, context: Context) -> None:
    # Not behind `@linked`: every chat learns the commands; an unlinked one then how to link it.
    who = await caller(update)
    text = who.texts.fill(texts.HELP, example=EXAMPLE_NUMBER)
    if who.customer is None:
        text += "\n\n" + who.texts.fill(texts.NOT_LINKED)
    await say(context, who, text)


async def unknown_command(update: Update, context: Context) -> None:
    who = await caller(update)
    await say(context, who, who.texts.fill(texts.UNKNOWN_COMMAND))
