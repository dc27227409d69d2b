"""The one shape of everything that runs for the server's lifetime: `async with` starts it and closes it.

Background work is a `Loop` (supervised: restarted with backoff when it fails) or a `Periodic` one
(a `tick()` every interval, or sooner when woken); `loops()` lists those of this process for /readyz.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


def backoff(attempt: int, *, base: float = 0.1, cap: float = 10.0) -> float:
    """Seconds to wait before retry number `attempt` (1, 2, …): exponential, capped, half jittered."""
    delay = min(cap, base * 2.0 ** min(max(attempt - 1, 0), 32))
    # Half of the delay is random so that processes cut off together don't come back in lockstep.
    return delay / 2 + random.uniform(0, delay / 2)


class Running:
    """`async with` calls `start()` on the way in and `close()` on the way out."""

    async def start(self) -> None:
        """Nothing to start unless a subclass says so."""

    async def close(self) -> None:
        """Nothing to close unless a subclass says so."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()


# Every loop between its start() and its close(), in start order: what /readyz reports on.
_started: dict[Loop, None] = {}


def loops() -> list[Loop]:
    """The loops of this process that are started and not closed yet."""
    return list(_started)


class Loop(Running, ABC):
    """Runs `run()` in a task named `name` from `start()` until `close()` cancels it, supervised.

    When `run()` raises, the failure is logged (with its traceback, unless it is one of the
    `expected_failures`) and `run()` is called again after a capped, jittered backoff that grows with the
    failures in a row (`restart_base`, `restart_cap`). When `run()` returns, the loop is done.
    """

    name = "ordercast.loop"
    restart_base = 0.1
    restart_cap = 10.0
    # Failures that are part of normal operation (a lost connection, an outage already reported
    # elsewhere): logged in one line, without a traceback. Restarted all the same.
    expected_failures: tuple[type[Exception], ...] = ()
    # One failure is a blip (a dropped connection); this many in a row and the loop keeps failing.
    failing_after = 3

    failures = 0
    last_error: str | None = None
    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run(self) -> None:
        """The work, until cancelled; raise to be run again after a backoff, return when nothing is left to do."""

    def succeeded(self) -> None:
        """The work is going well (a tick passed, a subscription is in place): the next failure is a first one."""
        self.failures = 0

    @property
    def status(self) -> str:
        """`ok` (running), `done` (`run()` returned), `failing: …`, `died: …`, or `stopped` (not started, or closed)."""
        task = self._task
        if task is None:
            return "stopped"
        if task.done():
            if task.cancelled():
                return "died: cancelled"
            error = task.exception()
            return "done" if error is None else f"died: {_describe(error)}"
        if self.failures >= self.failing_after:
            return f"failing ({self.failures} in a row): {self.last_error}"
        return "ok"

    @property
    def alive(self) -> bool:
        """Running and not failing again and again, or done on purpose."""
        return self.status in ("ok", "done")

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=self.name)
            _started[self] = None

    async def close(self) -> None:
        task, self._task = self._task, None
        _started.pop(self, None)
        if task is not None:
            task.cancel()
            # Not `await task`: a loop that died was logged and reported then; closing it doesn't raise.
            await asyncio.wait([task])
            if not task.cancelled():
                task.exception()

    async def rest(self, delay: float) -> None:
        """Wait `delay` seconds before running again."""
        await asyncio.sleep(delay)

    async def _supervise(self) -> None:
        try:
            while True:
                try:
                    await self.run()
                    return
                except Exception as error:  # noqa: BLE001 — the supervisor: logged (with its traceback) and run again
                    delay = self._failed(error)
                await self.rest(delay)
        except BaseException:
            if self._task is not None:  # not closing: a cancellation leaked out of run(), or worse
                logging.getLogger(self.name).critical("%s died; it is not restarted", self.name, exc_info=True)
            raise

    def _failed(self, error: Exception) -> float:
        """Count and log the failure; returns how long to wait before running again."""
        self.failures += 1
        self.last_error = _describe(error)
        delay = backoff(self.failures, base=self.restart_base, cap=self.restart_cap)
        log = logging.getLogger(self.name)
        if isinstance(error, self.expected_failures):
            log.warning("%s failed (%s); running it again in %.1f s", self.name, self.last_error, delay)
        else:
            log.exception("%s failed (%d in a row); running it again in %.1f s", self.name, self.failures, delay)
        return delay


class Periodic(Loop):
    """Calls `tick()` every `interval` seconds, or sooner after `wake()`; a failed tick is retried after a backoff."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._wakeup = asyncio.Event()

    @abstractmethod
    async def tick(self) -> None:
        """One round of the work."""

    def wake(self) -> None:
        """Tick now rather than at the end of the interval (or of a backoff): there is work to do."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            self._wakeup.clear()
            await self.tick()
            self.succeeded()
            await self.rest(self.interval)

    async def rest(self, delay: float) -> None:
        """Wait `delay` seconds, or until `wake()`."""
        with contextlib.suppress(TimeoutError):  # the time passed: tick again
            async with asyncio.timeout(delay):
                await self._wakeup.wait()


def _describe(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
