"""ordercast: a self-hosted order-notification hub for shops."""

__version__ = "0.1.0"
