"""The one shape of everything that runs for the server's lifetime: `async with` starts it and closes it."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


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


class Loop(Running, ABC):
    """Runs `run()` in a task named `name` from `start()` until `close()` cancels it."""

    name = "ordercast.loop"

    _task: asyncio.Task[None] | None = None

    @abstractmethod
    async def run(self) -> None:
        """The work, until cancelled."""

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=self.name)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
