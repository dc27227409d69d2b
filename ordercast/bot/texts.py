"""What the bot says (besides status messages and order summaries, which live in notify/templates)."""

from __future__ import annotations

from typing import Final

from ordercast.notify.templates.texts import N_

HELP: Final = N_(
    "Here's what I can do:\n"
    "/orders: your recent orders\n"
    "/order {example}: one order in detail\n"
    "/review: rate a delivered order\n"
    "/stop: no more status messages\n"
    "/start: status messages on again\n"
    "/help: this list"
)
NOT_LINKED: Final = N_(
    "This chat isn't linked to a customer account yet. Open the Telegram link the shop gave you "
    "(on your order page or in its email) and press Start."
)
LINKED: Final = N_(
    "Hello {name}! This chat is now linked to your account. You'll get a message here whenever one of your "
    "orders changes. Send /help to see what else I can do."
)
REFUSED: Final = {
    "unknown": N_("Sorry, this link isn't valid. Please ask the shop for a new one."),
    "used": N_("Sorry, this link has been used already. Please ask the shop for a new one."),
    "expired": N_("Sorry, this link has expired. Please ask the shop for a new one."),
}
STOPPED: Final = N_("Okay, no more status messages. Send /start to turn them back on.")
STARTED: Final = N_("Status messages are on: you'll hear from me whenever one of your orders changes.")
NO_ORDERS: Final = N_("You have no orders yet.")
YOUR_ORDERS: Final = N_("Your orders:")
MORE_ORDERS: Final = N_("Send /order with a number to see one in detail.")
ORDER_USAGE: Final = N_("Send /order followed by the order number, for example /order {example}.")
ORDER_NOT_FOUND: Final = N_("I couldn't find order {number} among your orders.")
REVIEW_NONE: Final = N_("You have no delivered orders waiting for a review.")
REVIEW_PICK: Final = N_("How would you rate order {number} ({total}, delivered)?")
REVIEW_STARS: Final = N_(
    "You gave order {number} {stars}. Would you like to add a comment? Send it as your next message, or /skip."
)
REVIEW_THANKS: Final = N_("Thank you for your review!")
REVIEW_GONE: Final = N_("This order can't be reviewed (any more).")
NOTHING_TO_SKIP: Final = N_("There's nothing to skip.")
UNKNOWN_COMMAND: Final = N_("Sorry, I don't know that command. Send /help to see what I can do.")
NOT_UNDERSTOOD: Final = N_("Send /help to see what I can do.")

# (command, description) for setMyCommands, in menu order.
COMMANDS: Final = (
    ("orders", N_("Your recent orders")),
    ("order", N_("One order in detail: /order <number>")),
    ("review", N_("Rate a delivered order")),
    ("stop", N_("No more status messages")),
    ("start", N_("Status messages on again")),
    ("help", N_("What this bot can do")),
)
