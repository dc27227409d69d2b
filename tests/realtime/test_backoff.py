"""`backoff()`: exponential in the attempt, capped, and half jittered (between half the delay and all of it)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from ordercast.realtime.backoff import backoff

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
