"""The Telegram bot: python-telegram-bot's Application inside the server's event loop, its commands,
chat linking and reviews. Handlers call the same use cases the API calls.
"""
