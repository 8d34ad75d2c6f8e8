"""RateLimiter: spec parsing, the sliding window counter, bounded memory, threads."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privguard.errors import ConfigError
from privguard.ratelimit import Rate, RateLimiter, parse_rate


@pytest.mark.parametrize(
    ("spec", "rate"),
    [
        pytest.param("30/minute", Rate(30, 60.0), id="minute"),
        pytest.param("5/second", Rate(5, 1.0), id="second"),
        pytest.param("100/hour", Rate(100, 3600.0), id="hour"),
        pytest.param("1000/day", Rate(1000, 86400.0), id="day"),
        pytest.param("10/minutes", Rate(10, 60.0), id="plural"),
        pytest.param("5/s", Rate(5, 1.0), id="short-s"),
        pytest.param("7/min", Rate(7, 60.0), id="short-min"),
        pytest.param(" 3 / H ", Rate(3, 3600.0), id="spaces-case"),
        pytest.param("20 per minute", Rate(20, 60.0), id="per"),
    ],
)
def test_parse_rate(spec: str, rate: Rate) -> None:
    assert parse_rate(spec) == rate


@pytest.mark.parametrize(
    "spec",
    ["", "30", "/minute", "0/minute", "-1/minute", "30/fortnight", "3/ms", "1.5/second", "x/y"],
)
def test_bad_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        RateLimiter(spec)
    assert info.value.option == "rate_limit"


def test_bad_max_keys() -> None:
    with pytest.raises(ConfigError):
        RateLimiter("1/second", max_keys=0)


def test_none_disables() -> None:
    limiter = RateLimiter(None)
    assert all(limiter.allow("k", 0.0) for _ in range(1000))
    assert len(limiter) == 0


# (time, expected) for one key at 3/minute; windows are [0, 60), [60, 120), ...
# estimate = previous * (1 - elapsed / 60) + current; allowed while estimate < 3.
SCENARIOS = {
    "burst-then-refused": [(0, True), (1, True), (2, True), (3, False), (59, False)],
    "new-window-weighs-the-old-one": [
        (0, True), (1, True), (2, True),  # previous window full
        (60, False),  # 3 * 1.00 + 0 = 3.00
        (80, True),   # 3 * 0.67 + 0 = 2.00
        (81, True),   # 3 * 0.65 + 1 = 2.95
        (82, False),  # 3 * 0.63 + 2 = 3.90
        (100, False), # 3 * 0.33 + 2 = 3.00
        (101, True),  # 3 * 0.32 + 2 = 2.95
    ],
    "quiet-window-resets": [
        (0, True), (1, True), (2, True), (125, True), (126, True), (127, True), (128, False),
    ],
    "refusals-are-not-counted": [
        (0, True), (1, True), (2, True), (3, False), (4, False), (5, False),
        (70, True),  # 3 * 0.83 = 2.5; had refusals counted, 6 * 0.83 = 5 would refuse
    ],
    # evenly at exactly the rate: the estimate is conservative at a window edge
    "evenly-at-the-rate": [
        (0, True), (20, True), (40, True), (60, False), (80, True), (100, True), (120, True),
    ],
    "evenly-below-the-rate": [(t, True) for t in range(0, 900, 30)],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenarios(name: str) -> None:
    limiter = RateLimiter("3/minute")
    got = [(t, limiter.allow("k", float(t))) for t, _ in SCENARIOS[name]]
    assert got == [(float(t), ok) for t, ok in SCENARIOS[name]]


def test_keys_are_independent() -> None:
    limiter = RateLimiter("2/second")
    assert [limiter.allow("a", 0.0) for _ in range(3)] == [True, True, False]
    assert [limiter.allow("b", 0.0) for _ in range(3)] == [True, True, False]


def test_memory_is_bounded_and_oldest_key_goes_first() -> None:
    limiter = RateLimiter("1/hour", max_keys=3)
    for key in "abc":
        assert limiter.allow(key, 0.0)
    assert not limiter.allow("a", 1.0)  # "a" is now the most recently seen
    assert limiter.allow("d", 2.0)  # evicts "b", the least recently seen
    assert len(limiter) == 3
    assert limiter.allow("b", 3.0)  # forgotten, so it starts afresh (evicting "c")
    assert not limiter.allow("a", 4.0)  # "a" was kept


def test_clock_going_backwards_does_not_reset() -> None:
    limiter = RateLimiter("2/minute")
    assert limiter.allow("k", 100.0) and limiter.allow("k", 100.0)
    assert not limiter.allow("k", 30.0)


def test_non_finite_time_fails_closed() -> None:
    assert not RateLimiter("2/minute").allow("k", float("nan"))


def test_thread_safety_counts_exactly() -> None:
    limiter = RateLimiter("1000/hour")
    results: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = [limiter.allow("shared", 10.0) for _ in range(500)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 1000


times = st.lists(st.floats(min_value=0, max_value=3600, allow_nan=False), max_size=200).map(sorted)


@settings(max_examples=200, deadline=None)
@given(times=times, limit=st.integers(1, 10), window=st.sampled_from([1.0, 60.0, 3600.0]))
def test_no_aligned_window_exceeds_the_limit(times: list[float], limit: int, window: float) -> None:
    limiter = RateLimiter(f"{limit}/{ {1.0: 'second', 60.0: 'minute', 3600.0: 'hour'}[window] }")
    allowed = [t for t in times if limiter.allow("k", t)]
    per_window: dict[int, int] = {}
    for t in allowed:
        per_window[int(t // window)] = per_window.get(int(t // window), 0) + 1
    assert all(count <= limit for count in per_window.values())
    # and the two-window sliding estimate never lets more than 2x through any window span
    for i, start in enumerate(allowed):
        assert sum(1 for t in allowed[i:] if t < start + window) <= 2 * limit


@settings(max_examples=200, deadline=None)
@given(times=times, limit=st.integers(1, 10))
def test_fewer_than_limit_in_two_windows_is_always_allowed(times: list[float], limit: int) -> None:
    """A key below the limit across the current and previous window is never refused."""
    limiter = RateLimiter(f"{limit}/minute")
    allowed: list[float] = []
    for t in times:
        ok = limiter.allow("k", t)
        window = int(t // 60)
        recent = sum(1 for a in allowed if int(a // 60) in (window - 1, window))
        if recent < limit:
            assert ok, (t, allowed)
        if ok:
            allowed.append(t)


@settings(max_examples=100, deadline=None)
@given(keys=st.lists(st.text(max_size=5), max_size=300), max_keys=st.integers(1, 20))
def test_key_count_never_exceeds_max_keys(keys: list[str], max_keys: int) -> None:
    limiter = RateLimiter("5/second", max_keys=max_keys)
    for i, key in enumerate(keys):
        limiter.allow(key, i / 10)
        assert len(limiter) <= max_keys
