"""The rate limit adapter over ``limits``: specs, storage URLs, memory and a real Redis.

The Redis tests run against a real ``redis-server`` (``tests/redis_server.py``):
two limiters, as two workers or nodes would hold, share one count; a server
stopped mid-test turns no request into an error, and the limit carries on per
process until the server is back.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading

import pytest

from privguard.errors import ConfigError
from privguard.ratelimit import Rate, RateLimiter, check_storage_url, parse_rate
from tests.redis_server import RedisServer, redis_server  # noqa: F401 (fixture)


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
        parse_rate(spec)
    assert info.value.option == "rate_limit"


@pytest.mark.parametrize(
    "url",
    [
        "memory://",
        "redis://127.0.0.1:6379/0",
        "redis://:secret@cache.internal:6380/2",
        "rediss://cache.internal",
        "redis+unix:///run/redis.sock",
    ],
)
def test_good_storage_urls(url: str) -> None:
    assert check_storage_url(url) == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "memcached://127.0.0.1:11211",
        "mongodb://x",
        "memory://somewhere",
        "redis://",
        "redis://127.0.0.1:6379/zero",
        "redis://127.0.0.1:notaport/0",
        "redis+unix://",
        "127.0.0.1:6379",
        None,
        6379,
    ],
)
def test_bad_storage_url_is_a_config_error_naming_the_option(url: object) -> None:
    with pytest.raises(ConfigError) as info:
        check_storage_url(url)
    assert info.value.option == "rate_limit_storage"


def test_settings_reject_a_bad_storage_and_hide_its_password() -> None:
    import privguard

    with pytest.raises(privguard.ConfigError) as info:
        privguard.Settings(secret_key="k" * 32, rate_limit_storage="memcache://x")
    assert info.value.option == "rate_limit_storage"
    with pytest.raises(privguard.ConfigError) as info:
        privguard.Settings(secret_key="k" * 32, rate_limit_storage="redis://:hunter2@h:1/x")
    assert "hunter2" not in str(info.value)
    settings = privguard.Settings(secret_key="k" * 32, rate_limit_storage="redis://:hunter2@h/0")
    assert "hunter2" not in repr(settings)
    assert settings.replace(debug=True).rate_limit_storage == "redis://:hunter2@h/0"


def test_memory_counts_per_key() -> None:
    limiter = RateLimiter("memory://")
    rate = Rate(3, 60.0)
    assert [limiter.allow(rate, "a") for _ in range(5)] == [True, True, True, False, False]
    assert [limiter.allow(rate, "b") for _ in range(4)] == [True, True, True, False]
    # the same key under another rate is another count
    assert limiter.allow(rate.times(10), "a")


def test_memory_is_exact_under_threads() -> None:
    limiter = RateLimiter("memory://")
    rate = Rate(500, 3600.0)
    results: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        mine = [limiter.allow(rate, "shared") for _ in range(200)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(True) == 500


def test_two_limiters_share_one_count_in_redis(redis_server: RedisServer) -> None:  # noqa: F811
    redis_server.flush()
    node_a = RateLimiter(redis_server.url(1))
    node_b = RateLimiter(redis_server.url(1))
    rate = Rate(10, 60.0)
    allowed = sum((node_a if i % 2 else node_b).allow(rate, "client") for i in range(40))
    assert allowed == 10
    assert node_a.fallbacks == node_b.fallbacks == 0
    # memory storages would have allowed 10 each
    mem_a, mem_b = RateLimiter("memory://"), RateLimiter("memory://")
    assert sum((mem_a if i % 2 else mem_b).allow(rate, "client") for i in range(40)) == 20


def _hits(url: str, count: int, queue: multiprocessing.Queue[int]) -> None:
    limiter = RateLimiter(url)
    queue.put(sum(limiter.allow(Rate(25, 60.0), "one-client") for _ in range(count)))


def test_processes_share_one_count_in_redis(redis_server: RedisServer) -> None:  # noqa: F811
    redis_server.flush()
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[int] = ctx.Queue()
    procs = [ctx.Process(target=_hits, args=(redis_server.url(2), 30, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    totals = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    assert sum(totals) == 25, totals


def test_redis_stopped_mid_test_falls_back_per_process_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = RedisServer().start()
    try:
        ticks = [0.0]
        limiter = RateLimiter(server.url(), retry_interval=5.0, clock=lambda: ticks[0])
        rate = Rate(3, 60.0)
        assert [limiter.allow(rate, "k") for _ in range(2)] == [True, True]
        server.stop()
        with caplog.at_level(logging.WARNING, logger="privguard.ratelimit"):
            # never raises; the per-process fallback counts afresh and still limits
            during = [limiter.allow(rate, "k") for _ in range(5)]
            ticks[0] = 6.0  # past the retry interval: Redis is tried again, still down
            during.append(limiter.allow(rate, "k"))
        assert during == [True, True, True, False, False, False]
        assert limiter.fallbacks == 6
        down = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down) == 1 and down[0].levelno == logging.ERROR
        server.start()
        ticks[0] = 12.0
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="privguard.ratelimit"):
            assert limiter.allow(rate, "k")  # shared again (a fresh server counts afresh)
        assert limiter.fallbacks == 6
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        server.destroy()
