"""`backoff()`: exponential in the attempt, capped, and half jittered (between half the delay and all of it).
The supervised loops: a failure is logged and run again after that backoff; `loops()` says which are alive.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import traceback

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ordercast.running import Loop, Periodic, backoff, loops
from tests.conftest import wait_for

SAMPLES = 1000

attempts = st.integers(min_value=-3, max_value=10_000)
bases = st.floats(min_value=0.001, max_value=60)
caps = st.floats(min_value=0.001, max_value=3600)


def delay(attempt: int, base: float, cap: float) -> float:
    """The un-jittered delay: `base` doubled for each retry after the first, at most `cap`."""
    return min(cap, base * 2.0 ** max(attempt - 1, 0))


# Hypothesis seeds `random` alike for every example, so these check the bounds, not the spread:
# the jitter has its own sampled test below.
@given(attempt=attempts, base=bases, cap=caps)
def test_the_delay_is_between_half_the_capped_exponential_and_all_of_it(attempt: int, base: float, cap: float) -> None:
    full = delay(min(attempt, 40), base, cap)  # past 2**40 × 0.001 s every delay is capped
    assert full / 2 <= backoff(attempt, base=base, cap=cap) <= full


@given(attempt=attempts, base=bases, cap=caps)
def test_the_delay_never_exceeds_the_cap(attempt: int, base: float, cap: float) -> None:
    assert 0 < backoff(attempt, base=base, cap=cap) <= cap


def test_the_delay_grows_with_failures_until_the_cap() -> None:
    # Two failures more at least double the delay, whatever the jitter: the shortest wait after
    # attempt n + 2 is longer than the longest after attempt n.
    for attempt in range(1, 9):
        shortest_later = min(backoff(attempt + 2, base=0.1, cap=100) for _ in range(100))
        longest_now = max(backoff(attempt, base=0.1, cap=100) for _ in range(100))
        assert shortest_later > longest_now, attempt
    assert 25.6 <= backoff(10, base=0.1, cap=100) <= 51.2
    assert 50 <= backoff(11, base=0.1, cap=100) <= 100
    assert 50 <= backoff(1000, base=0.1, cap=100) <= 100


def test_a_huge_attempt_number_is_capped_not_overflowed() -> None:
    assert 5.0 <= backoff(10**9) <= 10.0  # the defaults: base 0.1 s, cap 10 s


def test_the_delay_is_jittered_across_its_whole_range() -> None:
    # Processes cut off together must not come back in lockstep: the same attempt gives different
    # waits, spread over [delay / 2, delay] (these bounds fail by chance with probability ~0.8**1000).
    samples = [backoff(4, base=0.5, cap=60) for _ in range(SAMPLES)]
    assert len(set(samples)) > SAMPLES * 0.99
    assert all(2.0 <= sample <= 4.0 for sample in samples)
    assert min(samples) < 2.4
    assert max(samples) > 3.6
    assert 2.9 < sum(samples) / SAMPLES < 3.1


class Flaky(Periodic):
    """Its first `failing` ticks raise; the later ones pass."""

    name = "tests.running.flaky"
    restart_base = 0.02
    restart_cap = 0.08

    def __init__(self, failing: int, error: type[Exception] = ValueError) -> None:
        super().__init__(interval=60)
        self.failing = failing
        self.error = error
        self.ticks: list[float] = []

    async def tick(self) -> None:
        self.ticks.append(asyncio.get_running_loop().time())
        if len(self.ticks) <= self.failing:
            raise self.error(f"tick {len(self.ticks)} broke")


class Leaky(Loop):
    name = "tests.running.leaky"

    async def run(self) -> None:
        raise asyncio.CancelledError  # as a timeout that cancelled the wrong task would


class Once(Loop):
    name = "tests.running.once"

    async def run(self) -> None:
        return


def failure_logs(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == name]


async def test_a_loop_whose_tick_raises_is_restarted_with_backoff_and_logs_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=Flaky.name)
    async with Flaky(failing=3) as loop:
        await wait_for(lambda: len(loop.ticks) == 4 and loop.failures == 0, 5, "the tick after three failures")
        assert loop.alive
    # Each restart waits at least half of its un-jittered backoff: 0.02 s, then 0.04 s, then 0.08 s (the cap).
    gaps = [later - earlier for earlier, later in itertools.pairwise(loop.ticks)]
    for gap, full in zip(gaps, [0.02, 0.04, 0.08], strict=True):
        assert gap >= full / 2 - 0.001, gaps
    logged = failure_logs(caplog, Flaky.name)
    assert len(logged) == 3
    assert all(record.levelno == logging.ERROR and record.exc_info for record in logged)
    assert [record.getMessage().split(";")[0] for record in logged] == [
        f"{Flaky.name} failed ({count} in a row)" for count in (1, 2, 3)
    ]
    first = logged[0].exc_info
    assert first is not None
    assert "ValueError: tick 1 broke" in "".join(traceback.format_exception(*first))


async def test_an_expected_failure_is_logged_in_one_line_and_run_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=Flaky.name)
    loop = Flaky(failing=1, error=ConnectionError)
    loop.expected_failures = (ConnectionError,)
    async with loop:
        await wait_for(lambda: len(loop.ticks) == 2, 5, "the tick after the failure")
    [record] = failure_logs(caplog, Flaky.name)
    assert record.levelno == logging.WARNING
    assert not record.exc_info
    assert "ConnectionError: tick 1 broke" in record.getMessage()


async def test_a_loop_that_keeps_failing_is_listed_as_not_alive_until_it_is_closed() -> None:
    loop = Flaky(failing=10**9)
    loop.restart_base = loop.restart_cap = 0.001
    assert loop.status == "stopped"
    assert loop not in loops()
    async with loop:
        assert loop in loops()
        await wait_for(lambda: not loop.alive, 5, "the loop to count as failing")
        assert loop.failures >= loop.failing_after
        assert re.fullmatch(r"failing \(\d+ in a row\): ValueError: tick \d+ broke", loop.status)
    assert loop not in loops()
    assert loop.status == "stopped"


async def test_a_loop_whose_task_ended_by_a_cancellation_it_did_not_ask_for_is_dead() -> None:
    async with Leaky() as loop:
        await wait_for(lambda: loop.status != "ok", 5, "the loop to end")
        assert loop.status == "died: cancelled"
        assert not loop.alive
        assert loop in loops()
    assert loop not in loops()


async def test_a_loop_whose_run_returns_is_done_not_dead() -> None:
    async with Once() as loop:
        await wait_for(lambda: loop.status != "ok", 5, "the loop to end")
        assert loop.status == "done"
        assert loop.alive


async def test_wake_ticks_without_waiting_for_the_interval() -> None:
    async with Flaky(failing=0) as loop:
        await wait_for(lambda: len(loop.ticks) == 1, 5, "the first tick")
        loop.wake()
        await wait_for(lambda: len(loop.ticks) == 2, 5, "the tick after wake()")  # the interval is 60 s
