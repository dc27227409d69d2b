"""Who is on the other end: the socket peer, or behind trusted proxies the address they saw."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientAddresses:
    """The client IP of a request, for per-IP limits and logs.

    Only a peer in `trusted` (the reverse proxies) may name the client in `X-Forwarded-For`; there the
    client is the right-most hop that isn't a trusted proxy. Hops further left are whatever the client
    chose to send, so trusting them would let anyone pick the address their failed logins count against.
    """

    def __init__(self, trusted: Sequence[Network]) -> None:
        self._trusted = tuple(trusted)

    def of(self, conn: HTTPConnection) -> str:
        peer = conn.client.host if conn.client is not None else ""
        if not self._trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for header in conn.headers.getlist("x-forwarded-for") for hop in header.split(",")]
        client = peer
        for hop in reversed(hops):
            if not self._is_address(hop):
                break  # a trusted proxy wouldn't write this: stop at the last address it vouched for
            client = hop
            if not self._is_trusted(hop):
                break
        return client

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    @staticmethod
    def _is_address(value: str) -> bool:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return False
        return True
