"""Deliveries: planning (event × recipients → rows), the senders' claim loop, retries, rate limits,
templates, and the channels (the Telegram sender uses the bot's `Bot`; it never imports `bot/`).

Import the parts from their modules: `planning` and `templates` are pure and used inside the
services' transactions, the rest runs in the server.
"""
