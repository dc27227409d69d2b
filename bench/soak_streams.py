"""The stream clients of bench/soak.py, run as their own process (own event loop, own CPU time).

`argv[1]` is a JSON spec (ports, client count, the position to start from, lifetimes, a hard deadline);
the API key comes in `SOAK_API_KEY`. Half the clients read SSE (`GET /api/v1/events`), half WebSocket
(`/api/v1/ws`), each on a raw asyncio protocol (no per-message task wake-ups: 200 clients take ~100 events/s
each). A client reconnects at random moments, and whenever the server ends its connection, to a random
server with its last id; it records which events (by envelope id) it got, how often, and every `reset`.

Commands arrive as JSON lines on stdin: `{"cmd": "storm", "count": N}` opens N connections (half
SSE, half WebSocket, both servers) and drops them abruptly; `{"cmd": "finish", "expected": PATH,
"windows": [...], "within": S, "result": PATH}` stops the random reconnects, waits up to S seconds until
every client holds every expected event, writes the verdict to PATH and exits. Lines on stdout: `ready`,
`storm_done`, `result`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
CONNECT_TIMEOUT = 5.0
MAX_BUFFER = 8 * 1024 * 1024  # a client that falls this far behind its parser is cut (never expected)
MAX_CONNECTS = 10_000  # per client, over the whole run
RETRY_BASE, RETRY_CAP = 0.1, 2.0
STORM_BATCH = 100
MAX_SAMPLES = 5


def log(message: str) -> None:
    print(f"  [streams] {message}", file=sys.stderr, flush=True)


def emit(event: dict[str, Any]) -> None:
    print(json.dumps(event), flush=True)


class Ids:
    """Event ids → small ints, shared by every client (each keeps a byte of count per event)."""

    def __init__(self) -> None:
        self.index: dict[bytes, int] = {}

    def of(self, event_id: bytes) -> int:
        found = self.index.get(event_id)
        if found is None:
            found = self.index[event_id] = len(self.index)
        return found


@dataclass
class Client:
    number: int
    transport_kind: str  # "sse" or "ws"
    last_id: str
    ids: Ids
    counts: bytearray = field(default_factory=bytearray)
    messages: int = 0
    connects: int = 0
    failures: int = 0  # connection attempts refused, cut before the stream opened, or answered non-2xx
    statuses: dict[str, int] = field(default_factory=dict)  # non-success answers to stream opens
    resets: list[tuple[float, str]] = field(default_factory=list)
    closes: dict[str, int] = field(default_factory=dict)  # how connections ended
    refusals: list[tuple[float, int]] = field(default_factory=list)  # (wall, status) of non-2xx opens
    on_first_connect: Callable[[], None] | None = None

    def got(self, position: bytes, kind: bytes, event_id: bytes | None, reason: bytes | None) -> None:
        self.messages += 1
        self.last_id = position.decode()
        if kind == b"reset":
            self.resets.append((time.time(), (reason or b"?").decode()))
            return
        if event_id is None:
            return
        index = self.ids.of(event_id)
        counts = self.counts
        if index >= len(counts):
            counts.extend(bytes(index - len(counts) + 1024))
        if counts[index] < 255:
            counts[index] += 1


def read_json(path: str) -> Any:
    return json.loads(Path(path).read_text())


def write_json(path: str, data: Any) -> None:
    Path(path).write_text(json.dumps(data))


def _field(data: bytes, name: bytes, start: int = 0) -> bytes | None:
    """The string value of `"name":"…"` in compact JSON (orjson output: no spaces, ids without escapes)."""
    key = b'"' + name + b'":"'
    at = data.find(key, start)
    if at < 0:
        return None
    begin = at + len(key)
    end = data.find(b'"', begin)
    return data[begin:end] if end > 0 else None


class _Stream(asyncio.Protocol):
    """What SSE and WebSocket share: the response head, the end, the client it reports to."""

    def __init__(self, client: Client, request: bytes) -> None:
        self.client = client
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.status: int | None = None
        loop = asyncio.get_running_loop()
        self.ended: asyncio.Future[str] = loop.create_future()
        self.answered: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports aren't asyncio.Transport
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish("server_closed" if self.status is not None else "cut_before_answer")

    def finish(self, how: str) -> None:
        if not self.answered.done():
            self.answered.set_result(None)
        if not self.ended.done():
            self.ended.set_result(how)

    def abort(self) -> None:
        """Drop the connection abruptly (RST), as a client whose network vanished."""
        if self.transport is not None:
            with contextlib.suppress(OSError):
                sock = self.transport.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > MAX_BUFFER:
            self.finish("overrun")
            self.abort()
            return
        if self.status is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            try:
                self.status = int(head[9:12])
            except ValueError:
                self.status = 0
            if not self.answered.done():
                self.answered.set_result(None)
            if not self.head_ok(head):
                self.client.statuses[str(self.status)] = self.client.statuses.get(str(self.status), 0) + 1
                self.client.refusals.append((time.time(), self.status))
                self.finish(f"refused_{self.status}")
                self.abort()
                return
            self.client.connects += 1
            if self.client.connects == 1 and self.client.on_first_connect is not None:
                self.client.on_first_connect()
        try:
            self.parse()
        except ValueError:  # not the protocol we speak (a garbled chunk size): count it as a cut
            self.finish("garbled")
            self.abort()

    def head_ok(self, head: bytes) -> bool:
        raise NotImplementedError

    def parse(self) -> None:
        raise NotImplementedError


class SSEStream(_Stream):
    """`GET /api/v1/events`, chunked: chunks → SSE blocks → (id, event, envelope id)."""

    def __init__(self, client: Client, request: bytes) -> None:
        super().__init__(client, request)
        self.text = bytearray()

    def head_ok(self, head: bytes) -> bool:
        return self.status == 200 and b"chunked" in head.lower()

    def parse(self) -> None:
        buffer = self.buffer
        while True:
            line_end = buffer.find(b"\r\n")
            if line_end < 0:
                break
            size = int(bytes(buffer[:line_end]).split(b";", 1)[0], 16)
            if size == 0:
                self.finish("server_ended")
                return
            if len(buffer) < line_end + 2 + size + 2:
                break
            self.text += buffer[line_end + 2 : line_end + 2 + size]
            del buffer[: line_end + 2 + size + 2]
        text = self.text
        start = 0
        while True:
            end = text.find(b"\n\n", start)
            if end < 0:
                break
            block = bytes(text[start:end])
            start = end + 2
            if not block.startswith(b"id: "):
                continue  # `retry:` or a `: ping` comment
            newline = block.find(b"\n")
            position = block[4:newline]
            kind_at = block.find(b"\nevent: ")
            data_at = block.find(b"\ndata: ")
            kind = block[kind_at + 8 : data_at] if kind_at >= 0 else b"message"
            data = block[data_at + 7 :]
            if kind == b"reset":
                self.client.got(position, kind, None, _field(data, b"reason"))
            else:
                self.client.got(position, kind, _field(data, b"id"), None)
        if start:
            del text[:start]


class WSStream(_Stream):
    """`/api/v1/ws`: unmasked server frames; pings answered, a close frame answered and recorded."""

    def __init__(self, client: Client, request: bytes) -> None:
        super().__init__(client, request)
        self.fragments = bytearray()
        self.close_code: int | None = None

    def head_ok(self, head: bytes) -> bool:
        return self.status == 101

    def send_frame(self, opcode: int, payload: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        mask = os.urandom(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.transport.write(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def parse(self) -> None:
        buffer = self.buffer
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length = second & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = int.from_bytes(buffer[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = int.from_bytes(buffer[2:10], "big")
                offset = 10
            if len(buffer) < offset + length:
                return
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            opcode = first & 0x0F
            if opcode == 0x9:
                self.send_frame(0xA, payload)
            elif opcode == 0x8:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                self.send_frame(0x8, payload[:2])
                self.finish(f"close_{self.close_code}")
                if self.transport is not None:
                    self.transport.close()
                return
            elif opcode in (0x1, 0x0):
                self.fragments += payload
                if first & 0x80:
                    frame = bytes(self.fragments)
                    self.fragments.clear()
                    self.message(frame)

    def message(self, frame: bytes) -> None:
        position = _field(frame, b"id")
        kind = _field(frame, b"type")
        if position is None or kind is None:
            return
        data_at = frame.find(b'"data":')
        if kind == b"reset":
            self.client.got(position, kind, None, _field(frame, b"reason", data_at))
        else:
            self.client.got(position, kind, _field(frame, b"id", data_at), None)


def sse_request(port: int, api_key: str, last_id: str | None, first: bool) -> bytes:
    path = "/api/v1/events"
    headers = f"Authorization: Bearer {api_key}\r\nAccept: text/event-stream\r\n"
    if last_id is not None:
        # The first connection names its start in the URL (as a page does); EventSource's reconnects
        # send the header.
        if first:
            path += f"?last_event_id={last_id}"
        else:
            headers += f"Last-Event-ID: {last_id}\r\n"
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{headers}\r\n".encode()


def ws_request(port: int, api_key: str, last_id: str | None) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    path = "/api/v1/ws" + (f"?last_event_id={last_id}" if last_id is not None else "")
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {api_key}\r\n\r\n"
    ).encode()


class Streams:
    def __init__(self, spec: dict[str, Any], api_key: str) -> None:
        self.ports: list[int] = spec["ports"]
        self.api_key = api_key
        self.rng = random.Random(spec["seed"])
        self.lifetime: tuple[float, float] = tuple(spec["lifetime"])  # type: ignore[assignment]
        self.deadline = time.monotonic() + spec["max_seconds"]
        self.ids = Ids()
        self.clients = [
            Client(number, "sse" if number % 2 == 0 else "ws", spec["position"], self.ids)
            for number in range(spec["clients"])
        ]
        self.finishing = False
        self.all_connected = asyncio.Event()
        self._unconnected = len(self.clients)
        for client in self.clients:
            client.on_first_connect = self._connected
        self.stopped = asyncio.Event()
        self.open_streams: set[_Stream] = set()
        self.storms: list[dict[str, Any]] = []

    def _connected(self) -> None:
        self._unconnected -= 1
        if self._unconnected == 0:
            self.all_connected.set()

    async def run_client(self, client: Client) -> None:
        loop = asyncio.get_running_loop()
        consecutive = 0
        attempts = 0
        while not self.stopped.is_set() and attempts < MAX_CONNECTS and time.monotonic() < self.deadline:
            attempts += 1
            port = self.rng.choice(self.ports)
            first = attempts == 1
            if client.transport_kind == "sse":
                stream: _Stream = SSEStream(client, sse_request(port, self.api_key, client.last_id, first))
            else:
                stream = WSStream(client, ws_request(port, self.api_key, client.last_id))
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await loop.create_connection(lambda stream=stream: stream, HOST, port)  # type: ignore[misc]
            except (OSError, TimeoutError):
                client.failures += 1
                consecutive += 1
                client.closes["connect_failed"] = client.closes.get("connect_failed", 0) + 1
                await self.pause(consecutive)
                continue
            self.open_streams.add(stream)
            lifetime = self.rng.uniform(*self.lifetime)
            try:
                how = await self.watch(stream, lifetime)
            finally:
                self.open_streams.discard(stream)
            client.closes[how] = client.closes.get(how, 0) + 1
            if stream.status is None or stream.status not in (101, 200):
                client.failures += 1
                consecutive += 1
                await self.pause(consecutive)
            else:
                consecutive = 0
                if how != "lifetime":
                    # The server ended it (killed, restarted, shutting down, too slow): resume soon, as
                    # EventSource does after `retry`, here sooner and with jitter.
                    await self.pause(1)

    async def watch(self, stream: _Stream, lifetime: float) -> str:
        """Until the stream ends, or its lifetime passes (then drop it: abruptly or politely, at random)."""
        while True:
            remaining = min(lifetime, self.deadline - time.monotonic())
            if self.finishing:
                remaining = self.deadline - time.monotonic()
            try:
                async with asyncio.timeout(max(0.0, remaining)):
                    return await asyncio.shield(stream.ended)
            except TimeoutError:
                if self.finishing and time.monotonic() < self.deadline:
                    continue  # no more random reconnects once the soak is being judged
                if self.rng.random() < 0.5:
                    stream.abort()
                elif stream.transport is not None:
                    if isinstance(stream, WSStream):
                        stream.send_frame(0x8, (1000).to_bytes(2, "big"))
                    stream.transport.close()
                stream.finish("lifetime")
                return "lifetime"

    async def pause(self, consecutive: int) -> None:
        cap = min(RETRY_CAP, RETRY_BASE * 2 ** min(consecutive, 10))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.rng.uniform(RETRY_BASE, cap)):
                await self.stopped.wait()

    async def storm(self, count: int) -> dict[str, Any]:
        """Open `count` stream connections, half SSE, half WebSocket, and drop each abruptly: some right
        after the request, some once the answer began."""
        statuses: dict[str, int] = {}
        errors = 0
        started = time.time()

        async def one(number: int) -> None:
            nonlocal errors
            port = self.ports[number % len(self.ports)]
            throwaway = Client(-1, "sse", "", Ids())
            if number % 2 == 0:
                stream: _Stream = SSEStream(throwaway, sse_request(port, self.api_key, None, True))
            else:
                stream = WSStream(throwaway, ws_request(port, self.api_key, None))
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await loop.create_connection(lambda: stream, HOST, port)
                if self.rng.random() < 0.5:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(2.0):
                            await stream.answered
            except (OSError, TimeoutError):
                errors += 1
            finally:
                status = str(stream.status) if stream.status is not None else "dropped_before_answer"
                statuses[status] = statuses.get(status, 0) + 1
                stream.abort()

        for first in range(0, count, STORM_BATCH):
            await asyncio.gather(*(one(number) for number in range(first, min(count, first + STORM_BATCH))))
        result = {"count": count, "statuses": statuses, "errors": errors, "started": started, "ended": time.time()}
        self.storms.append(result)
        return result

    async def finish(self, command: dict[str, Any]) -> None:
        """Stop the random reconnects, wait for every client to hold every expected event, judge, write."""
        self.finishing = True
        expected: list[list[Any]] = read_json(command["expected"])  # [id, window, type]
        windows: list[dict[str, Any]] = command["windows"]
        indexes = [self.ids.index.get(event_id.encode(), -1) for event_id, _, _ in expected]
        missing: list[list[int]] = []
        for client in self.clients:
            counts = client.counts
            missing.append(
                [n for n, index in enumerate(indexes) if index < 0 or index >= len(counts) or counts[index] == 0]
            )
        deadline = time.monotonic() + command["within"]
        while time.monotonic() < deadline and any(missing):
            await asyncio.sleep(0.2)
            indexes = [self.ids.index.get(event_id.encode(), -1) for event_id, _, _ in expected]
            for client, still in zip(self.clients, missing, strict=True):
                counts = client.counts
                still[:] = [n for n in still if indexes[n] < 0 or indexes[n] >= len(counts) or counts[indexes[n]] == 0]
        self.stopped.set()
        for stream in list(self.open_streams):
            stream.abort()
        result = self.judge(expected, indexes, missing, windows)
        write_json(command["result"], result)

    def judge(
        self, expected: list[list[Any]], indexes: list[int], missing: list[list[int]], windows: list[dict[str, Any]]
    ) -> dict[str, Any]:
        def window_of(wall: float) -> int:
            for number, window in enumerate(windows):
                if wall < window["end"]:
                    return number
            return len(windows) - 1

        count = len(windows)
        lost = [[0] * count for _ in self.clients]
        duplicated = [[0] * count for _ in self.clients]
        resets = [[0] * count for _ in self.clients]
        refusals: list[dict[str, int]] = [{} for _ in range(count)]
        window_of_index = {index: expected[n][1] for n, index in enumerate(indexes) if index >= 0}
        samples: list[str] = []
        for client_number, client in enumerate(self.clients):
            for n in missing[client_number]:
                lost[client_number][expected[n][1]] += 1
                if len(samples) < MAX_SAMPLES:
                    samples.append(f"client {client_number} ({client.transport_kind}) never got {expected[n][0]}")
            for index, times in enumerate(client.counts):
                if times > 1:
                    duplicated[client_number][window_of_index.get(index, count - 1)] += times - 1
            for wall, _ in client.resets:
                resets[client_number][window_of(wall)] += 1
            for wall, status in client.refusals:
                bucket = refusals[window_of(wall)]
                bucket[str(status)] = bucket.get(str(status), 0) + 1
        closes: dict[str, int] = {}
        for client in self.clients:
            for how, times in client.closes.items():
                closes[how] = closes.get(how, 0) + times
        reasons: dict[str, int] = {}
        for client in self.clients:
            for _, reason in client.resets:
                reasons[reason] = reasons.get(reason, 0) + 1
        return {
            "clients": len(self.clients),
            "kinds": [client.transport_kind for client in self.clients],
            "expected": len(expected),
            "lost": lost,
            "duplicated": duplicated,
            "resets": resets,
            "reset_reasons": reasons,
            "stream_refusals": refusals,
            "connects": sum(client.connects for client in self.clients),
            "failures": sum(client.failures for client in self.clients),
            "messages": sum(client.messages for client in self.clients),
            "closes": closes,
            "lost_samples": samples,
            "storms": self.storms,
        }


async def commands(streams: Streams) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while time.monotonic() < streams.deadline:
        remaining = streams.deadline - time.monotonic()
        try:
            line = await asyncio.wait_for(reader.readline(), remaining)
        except TimeoutError:
            break
        if not line:
            break  # the driver is gone
        command = json.loads(line)
        if command["cmd"] == "storm":
            emit({"event": "storm_done", **await streams.storm(int(command["count"]))})
        elif command["cmd"] == "finish":
            await streams.finish(command)
            emit({"event": "result", "path": command["result"]})
            return
    streams.stopped.set()


async def main() -> None:
    spec = json.loads(sys.argv[1])
    streams = Streams(spec, os.environ["SOAK_API_KEY"])
    tasks = [asyncio.create_task(streams.run_client(client)) for client in streams.clients]

    try:
        async with asyncio.timeout(spec["connect_within"]):
            await streams.all_connected.wait()
    except TimeoutError:
        emit({"event": "not_ready", "connected": sum(client.connects > 0 for client in streams.clients)})
    else:
        emit({"event": "ready", "clients": len(streams.clients)})
    try:
        await commands(streams)
    finally:
        streams.stopped.set()
        for stream in list(streams.open_streams):
            stream.abort()
        await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
