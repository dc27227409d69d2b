"""The one HTTP client for addresses users give: push endpoints (and, next, webhook endpoints).

It applies API.md's outbound address rule. A name is resolved by a resolver that drops loopback,
private, link-local, unspecified, multicast and reserved addresses, and aiohttp connects to an
address that resolver returned (no second lookup, so DNS can't answer differently in between). A
literal address, in any spelling (`0x7f000001`, `2130706433`, `127.1`, `[::ffff:127.0.0.1]`), is
judged before anything connects: aiohttp doesn't ask the resolver about what it takes for an IP.
Redirects are never followed, timeouts are fixed, and a failure is a category (`blocked_address`,
`timeout`, `tls`, …), never a response body: echoing what answered would make us a port scanner.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from multidict import CIMultiDictProxy
from yarl import URL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# An answer's body is never kept; one this short is read (and dropped) so its connection can be reused.
_DRAIN: Final = 65_536
_NAT64: Final = ipaddress.ip_network("64:ff9b::/96")
_IPV4_PART: Final = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")
_NUMBER: Final = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")


class BlockedAddress(OSError):
    """The target is, or resolves only to, addresses the outbound address rule forbids."""


class OutboundError(Exception):
    """A request that got no HTTP answer. `category` names why in a word; `permanent`: trying again
    can't help (the address is forbidden, the URL is unusable)."""

    def __init__(self, category: str, *, permanent: bool = False) -> None:
        super().__init__(category)
        self.category = category
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Answer:
    """What a target answered: its status and headers (its body is never kept)."""

    status: int
    headers: CIMultiDictProxy[str]


def forbidden(address: Address) -> bool:
    """Whether the rule forbids `address`: anything but a global unicast one, whatever it embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        if address in _NAT64:
            embedded: Address | None = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
        else:
            embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return forbidden(embedded)
        if address.is_site_local:
            return True
    return (
        not address.is_global
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


def literal_address(host: str) -> Address | None:
    """The address `host` spells, in any form a resolver would read as one; None for a name.

    IPv4 follows the WHATWG URL standard (as libc's `inet_aton` does): one to four parts, each decimal,
    `0x` hex or `0` octal, the last filling the remaining bytes. A host that looks like an address but
    isn't a valid one raises `ValueError`.
    """
    host = host.strip("[]").rstrip(".").lower()
    with contextlib.suppress(ValueError):  # not a plain address: try the spellings below
        return ipaddress.ip_address(host)
    if ":" in host:
        raise ValueError(f"{host!r} is not an IPv6 address")
    parts = host.split(".")
    if not _NUMBER.fullmatch(parts[-1]):
        return None  # a name: its last label is not a number
    if len(parts) > 4 or not all(_IPV4_PART.fullmatch(part) for part in parts):
        raise ValueError(f"{host!r} is not an IPv4 address")
    numbers = [_ipv4_number(part) for part in parts]
    *leading, last = numbers
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        raise ValueError(f"{host!r} is not an IPv4 address")
    value = last
    for index, number in enumerate(leading):
        value += number << (8 * (3 - index))
    return ipaddress.IPv4Address(value)


def _ipv4_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part[1:], 8)
    return int(part)


def forbidden_host(host: str) -> bool:
    """Whether `host` is a literal address the rule forbids (or an unreadable one). A name is judged
    when it is resolved, at each send."""
    try:
        address = literal_address(host)
    except ValueError:
        return True
    return address is not None and forbidden(address)


def refusal(url: str, *, allow_private: bool) -> str | None:
    """Why the rule refuses `url` before any lookup (`invalid_url`, `insecure_url`, `blocked_address`), or None."""
    try:
        target = URL(url)
        host, _ = target.raw_host, target.port
    except ValueError:
        return "invalid_url"
    if target.scheme not in ("https", "http") or not host:
        return "invalid_url"
    if allow_private:
        return None
    if target.scheme != "https":
        return "insecure_url"
    return "blocked_address" if forbidden_host(host) else None


class CheckedResolver(AbstractResolver):
    """Resolves as aiohttp would, then drops the addresses the rule forbids; none left: `BlockedAddress`."""

    def __init__(self, resolver: AbstractResolver | None = None) -> None:
        self._resolver = resolver if resolver is not None else DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._resolver.resolve(host, port, family)
        kept = [result for result in found if not forbidden_host(result["host"])]
        if not kept:
            raise BlockedAddress(f"{host} resolves to no address we may connect to")
        return kept

    async def close(self) -> None:
        await self._resolver.close()


class Outbound:
    """An HTTP client for user-given targets: the address rule (unless `allow_private`), no redirects,
    `timeout` seconds for the whole request, `connections` open at most."""

    def __init__(self, *, allow_private: bool, timeout: float, connections: int = 100) -> None:
        self._allow_private = allow_private
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=timeout)
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        resolver = DefaultResolver() if self._allow_private else CheckedResolver()
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self._connections, resolver=resolver),
            timeout=self._timeout,
            # One target's cookies are no business of another's (nor of the next request to it).
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,
        )

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def started(self) -> bool:
        return self._session is not None

    async def __aenter__(self) -> Outbound:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def check(self, url: str) -> None:
        """`OutboundError` if the rule refuses `url` before any lookup."""
        category = refusal(url, allow_private=self._allow_private)
        if category is not None:
            raise OutboundError(category, permanent=True)

    async def post(self, url: str, *, data: bytes, headers: Mapping[str, str]) -> Answer:
        """POST `data` to `url`: its answer (a 3xx too: redirects are not followed), or `OutboundError`."""
        self.check(url)
        if self._session is None:
            raise OutboundError("not_started")
        try:
            async with self._session.post(url, data=data, headers=headers, allow_redirects=False) as response:
                if response.content_length is not None and response.content_length <= _DRAIN:
                    await response.read()  # a short answer read whole lets the connection be reused
                return Answer(response.status, response.headers)
        except aiohttp.ClientConnectorError as error:
            raise _connect_error(error) from None
        except TimeoutError:
            raise OutboundError("timeout") from None
        except aiohttp.InvalidURL:
            raise OutboundError("invalid_url", permanent=True) from None
        except aiohttp.ServerDisconnectedError:
            raise OutboundError("disconnected") from None
        except (aiohttp.ClientResponseError, aiohttp.ClientPayloadError):
            raise OutboundError("bad_response") from None
        except (aiohttp.ClientError, OSError):
            raise OutboundError("connect") from None


def _connect_error(error: aiohttp.ClientConnectorError) -> OutboundError:
    cause = error.os_error
    if isinstance(cause, BlockedAddress):
        return OutboundError("blocked_address", permanent=True)
    if isinstance(error, (aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError)) or isinstance(
        cause, ssl.SSLError
    ):
        return OutboundError("tls")
    if isinstance(error, aiohttp.ClientConnectorDNSError):
        return OutboundError("dns")
    if isinstance(cause, ConnectionRefusedError):
        return OutboundError("connection_refused")
    if isinstance(cause, TimeoutError):
        return OutboundError("timeout")
    return OutboundError("connect")
