"""The outbound client (API.md, "Outbound address rule"): real aiohttp requests to servers on this
machine, refused before anything connects while the rule is on, reached while it is lifted; redirects
answered, never followed; failures as categories."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator

import pytest
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ordercast.config import Settings
from ordercast.notify.outbound import (
    BlockedAddress,
    CheckedResolver,
    Outbound,
    OutboundError,
    forbidden,
    forbidden_host,
    literal_address,
)
from tests.conftest import free_port, serving


class Listener:
    """A TCP port that counts who connects to it (and hangs up on them)."""

    def __init__(self) -> None:
        self.connections = 0
        self.port = 0

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.close()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    listening = Listener()
    server = await asyncio.start_server(listening._accept, "127.0.0.1", 0)
    listening.port = server.sockets[0].getsockname()[1]
    async with server:
        yield listening


class Target:
    """An HTTP server on this machine: `/ok` answers 200 with a body, `/moved` redirects to `elsewhere`,
    `/stuck` never answers; `hits` counts requests by path."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.elsewhere = ""
        self.release = asyncio.Event()
        self.app = Starlette(routes=[Route("/{name}", self._endpoint, methods=["POST"])])

    async def _endpoint(self, request: Request) -> Response:
        name = request.path_params["name"]
        self.hits[name] = self.hits.get(name, 0) + 1
        if name == "moved":
            return Response("see elsewhere", status_code=307, headers={"Location": self.elsewhere})
        if name == "stuck":
            await self.release.wait()
        return Response("internal detail of the target", status_code=200)


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, str]]:
    served = Target()
    async with serving(served.app, "the target") as url:
        try:
            yield served, url
        finally:
            served.release.set()  # before the server stops: it waits for the stuck request


@contextlib.asynccontextmanager
async def client(*, allow_private: bool, timeout: float = 5) -> AsyncIterator[Outbound]:
    async with Outbound(allow_private=allow_private, timeout=timeout) as outbound:
        yield outbound


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "0.0.0.0",
        "224.0.1.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of the metadata address
        "2002:7f00:1::",  # 6to4 of loopback
    ],
)
def test_loopback_private_link_local_and_reserved_addresses_are_forbidden(address: str) -> None:
    assert forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["1.1.1.1", "93.184.216.34", "2606:4700::1111", "::ffff:1.1.1.1", "64:ff9b::101:101"]
)
def test_global_unicast_addresses_are_allowed(address: str) -> None:
    assert not forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "host",
    ["0x7f000001", "2130706433", "127.1", "0177.0.0.1", "0x7f.1", "017700000001", "127.0.0.1.", "[::ffff:127.0.0.1]"],
)
def test_any_spelling_of_an_address_is_read_as_that_address(host: str) -> None:
    address = literal_address(host)
    assert address is not None
    assert address == ipaddress.ip_address("127.0.0.1") or address == ipaddress.ip_address("::ffff:127.0.0.1")
    assert forbidden_host(host)


@pytest.mark.parametrize("host", ["example.com", "push.example.com.", "1e100.net", "0x.example"])
def test_names_are_left_to_the_resolver(host: str) -> None:
    assert literal_address(host) is None
    assert not forbidden_host(host)


@pytest.mark.parametrize("host", ["256.0.0.1", "1.2.3.4.5", "0x100000000", "09.1.1.1", "1.2.3.08"])
def test_a_host_that_looks_like_an_address_but_is_not_one_is_refused(host: str) -> None:
    with pytest.raises(ValueError, match="not an IPv4 address"):
        literal_address(host)
    assert forbidden_host(host)


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "localhost", "0x7f000001", "2130706433", "127.1", "[::ffff:127.0.0.1]", "[::1]", "[::]"]
)
async def test_the_rule_refuses_a_local_target_before_anything_connects(listener: Listener, host: str) -> None:
    async with client(allow_private=False) as outbound:
        with pytest.raises(OutboundError) as refused:
            await outbound.post(f"https://{host}:{listener.port}/push", data=b"{}", headers={})
    assert (refused.value.category, refused.value.permanent) == ("blocked_address", True)
    assert listener.connections == 0


async def test_a_name_is_judged_by_what_it_resolves_to() -> None:
    with pytest.raises(BlockedAddress):
        await CheckedResolver(ThreadedResolver()).resolve("localhost", 443)


class Answers(AbstractResolver):
    """DNS as a test wants it: these addresses for any name."""

    def __init__(self, *addresses: str) -> None:
        self._addresses = addresses

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        return [
            ResolveResult(hostname=host, host=address, port=port, family=family, proto=0, flags=0)
            for address in self._addresses
        ]

    async def close(self) -> None:
        pass


async def test_the_resolver_drops_forbidden_addresses_and_keeps_the_rest() -> None:
    mixed = CheckedResolver(Answers("169.254.169.254", "10.0.0.7", "93.184.216.34", "::ffff:127.0.0.1"))
    assert [found["host"] for found in await mixed.resolve("push.example.com", 443)] == ["93.184.216.34"]
    with pytest.raises(BlockedAddress):
        await CheckedResolver(Answers("169.254.169.254", "fd00::1")).resolve("metadata.example.com", 443)


async def test_without_the_rule_local_http_targets_are_reached(target: tuple[Target, str]) -> None:
    served, url = target
    port = url.rsplit(":", 1)[1]
    async with client(allow_private=True) as outbound:
        for base in (url, f"http://localhost:{port}"):
            answer = await outbound.post(f"{base}/ok", data=b"{}", headers={"Content-Type": "application/json"})
            assert answer.status == 200
            assert not hasattr(answer, "body")
    assert served.hits == {"ok": 2}


async def test_plain_http_needs_the_rule_lifted() -> None:
    async with client(allow_private=False) as outbound:
        with pytest.raises(OutboundError) as refused:
            await outbound.post("http://push.example.com/x", data=b"", headers={})
    assert (refused.value.category, refused.value.permanent) == ("insecure_url", True)


async def test_a_redirect_is_answered_not_followed(target: tuple[Target, str]) -> None:
    served, url = target
    other = Target()
    async with serving(other.app, "where the redirect points") as elsewhere:
        served.elsewhere = f"{elsewhere}/ok"
        async with client(allow_private=True) as outbound:
            answer = await outbound.post(f"{url}/moved", data=b"{}", headers={})
    assert (answer.status, answer.headers["Location"]) == (307, served.elsewhere)
    assert (served.hits, other.hits) == ({"moved": 1}, {})


async def test_failures_are_categories_never_what_answered(target: tuple[Target, str], listener: Listener) -> None:
    _, url = target
    cases = [
        (f"{url}/stuck", "timeout"),
        (f"http://127.0.0.1:{free_port()}/", "connection_refused"),
        (f"https://{url.removeprefix('http://')}/ok", "tls"),  # TLS to a plain HTTP server
        (f"http://127.0.0.1:{listener.port}/", "disconnected"),
    ]
    async with client(allow_private=True, timeout=1) as outbound:
        for address, category in cases:
            with pytest.raises(OutboundError) as failed:
                await outbound.post(address, data=b"{}", headers={})
            assert (failed.value.category, failed.value.permanent) == (category, False), address


def test_the_setting_keeps_its_old_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ORDERCAST_OUTBOUND_ALLOW_PRIVATE", "ORDERCAST_PUSH_ALLOW_INSECURE"):
        monkeypatch.delenv(name, raising=False)
    assert not Settings().outbound_allow_private
    monkeypatch.setenv("ORDERCAST_PUSH_ALLOW_INSECURE", "true")
    assert Settings().outbound_allow_private
    monkeypatch.delenv("ORDERCAST_PUSH_ALLOW_INSECURE")
    monkeypatch.setenv("ORDERCAST_OUTBOUND_ALLOW_PRIVATE", "true")
    assert Settings().outbound_allow_private
