"""The runtime's decision cache: bounded, per-input, never past a consent's expiry."""

import time
from dataclasses import replace

from privguard.core.categories import Category
from privguard.core.consent import ConsentState
from privguard.core.request import RequestView
from privguard.runtime import DecisionCache, Runtime
from privguard.settings import Settings

KEY = "runtime-test-key-" + "x" * 32


class Clock:
    def __init__(self, now=1_800_000_000.0):
        self.now = now

    def __call__(self):
        return self.now


def view(cookie=None, **headers):
    h = {k.replace("_", "-"): v for k, v in headers.items()}
    if cookie is not None:
        h["cookie"] = cookie
    return RequestView("GET", "/", "http", "shop.test", "127.0.0.1", h)


def test_same_inputs_hit_other_inputs_miss():
    rt = Runtime(
        Settings(secret_key=KEY, ledger=None, country_header="CF-IPCountry", trusted_proxies=1)
    )
    first = rt.decide(view(cf_ipcountry="DE"))
    assert rt.decide(view(cf_ipcountry="DE")) is first
    us = rt.decide(view(cf_ipcountry="US"))
    gpc = rt.decide(view(cf_ipcountry="DE", sec_gpc="1"))
    assert us.regime.name == "us-optout" and gpc.gpc and not first.gpc


def test_cached_decision_never_outlives_the_consent_cookie():
    clock = Clock(time.time())
    rt = Runtime(Settings(secret_key=KEY, ledger=None, consent_max_age=30), clock=clock)
    token = rt.codec.dump(ConsentState("1", frozenset(Category), "r", regime="gdpr"))
    signed_at = rt.codec.load(token, clock.now + 1).timestamp
    clock.now = signed_at + 10
    cookie = f"privguard_consent={token}"
    assert rt.decide(view(cookie)).choice is not None
    clock.now = signed_at + 31
    assert rt.decide(view(cookie)).choice is None


def test_cache_is_bounded_and_huge_keys_are_not_kept():
    settings = Settings(secret_key=KEY, ledger=None)
    cache = DecisionCache(settings, size=50)
    rt = Runtime(settings)
    for i in range(500):
        v = view(f"sessionid={i}")
        cache.put(cache.key(v), rt.decide(v), 0.0)
    assert len(cache) <= 50
    huge = view("a=" + "x" * 10_000)
    cache.put(cache.key(huge), rt.decide(huge), 0.0)
    assert cache.get(cache.key(huge), 0.0) is None  # answered, never kept
    assert len(cache) <= 50


def test_a_decision_memoised_after_a_clear_is_found_again():
    """The adapters ask ``Runtime.cached`` with the key they build: once the full memo
    was cleared, a decision kept after that is what it answers."""
    rt = Runtime(Settings(secret_key=KEY, ledger=None))
    for i in range(rt.decisions._size + 10):  # past the bound: cleared once
        rt.decide(view(f"sessionid={i}"))
    last = view(f"sessionid={rt.decisions._size + 9}")
    key = rt.decisions.key(last)
    assert rt.decisions._cache[key][0] is rt.decide(last) is rt.cached(key)


def test_age_gated_paths_are_part_of_the_key():
    rt = Runtime(Settings(secret_key=KEY, ledger=None, age_gate_paths=["/checkout*"]))
    home = rt.decide(RequestView("GET", "/", "http", "h", "127.0.0.1", {}))
    gate = rt.decide(RequestView("GET", "/checkout", "http", "h", "127.0.0.1", {}))
    assert not home.age_gated and gate.age_gated


def _fields(decision):
    import dataclasses

    return {f.name: getattr(decision, f.name) for f in dataclasses.fields(decision)}


def test_cached_decisions_equal_fresh_ones_for_any_mix_of_visitors():
    """Property: the memo never hands one visitor's decision to another."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from privguard.core.decision import decide

    rt = Runtime(
        Settings(
            secret_key=KEY,
            ledger=None,
            country_header="CF-IPCountry",
            trusted_proxies=1,
            age_gate_paths=["/checkout*"],
        )
    )
    tokens = [
        rt.codec.dump(ConsentState("1", frozenset(Category), "a")),
        rt.codec.dump(ConsentState("1", frozenset({Category.NECESSARY}), "b")),
        rt.codec.dump(ConsentState("1", None, "c", age_status="minor", age_threshold=16)),
        rt.codec.dump(ConsentState("0", frozenset(Category), "d")),
    ]
    cookie = st.one_of(
        st.none(),
        st.sampled_from([f"privguard_consent={t}" for t in tokens]),
        st.just("_ga=1; lang=de"),
        st.text(max_size=20),
    )
    visitor = st.fixed_dictionaries(
        {
            "cookie": cookie,
            "cf-ipcountry": st.sampled_from(["DE", "US", "BR", "XX", ""]),
            "sec-gpc": st.sampled_from(["1", "0", ""]),
            "user-agent": st.sampled_from(["Mozilla/5.0 Firefox/130.0", "curl/8.0", ""]),
            "x-forwarded-for": st.sampled_from(["81.2.3.4", "2001:db8::1", "garbage"]),
        }
    )

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(
            st.tuples(
                visitor,
                st.sampled_from(["/", "/checkout", "/cart"]),
                st.sampled_from(["http", "https"]),
            ),
            min_size=1,
            max_size=8,
        )
    )
    def check(requests):
        for headers, path, scheme in requests:
            h = {k: v for k, v in headers.items() if v is not None}
            view = RequestView("GET", path, scheme, "shop.test", "127.0.0.1", h)
            cached = rt.decide(view)
            fresh = decide(view, rt.settings, rt.lookups, rt.clock())
            assert _fields(cached) == _fields(fresh)

    check()


def test_the_short_way_takes_only_a_usual_memo_hit():
    clock = Clock()
    rt = Runtime(
        Settings(secret_key=KEY, ledger=None, age_gate_paths=["/wine"], country_header="X-C"),
        clock=clock,
    )
    v = view(x_c="DE")
    key = rt.decisions.key(v)
    assert rt.usual(key, "/") is None  # nothing memoised yet
    decision = rt.decide(v, key)
    assert rt.usual(key, "/") is decision is rt.cached(key)
    for own in ("/privguard/consent", "/privguard/", "/.well-known/gpc.json"):
        assert rt.usual(key, own) is None, own  # privguard's own paths: the general way
    assert rt.usual(key, "/privguardian") is decision  # a shop path that merely starts alike
    clock.now += 61  # past the memo's time to live
    assert rt.usual(key, "/") is None and rt.cached(key) is None


def test_the_short_way_leaves_age_gates_and_withdrawal_signals_to_the_general_way():
    rt = Runtime(Settings(secret_key=KEY, ledger=None, age_gate_paths=["/wine"]))
    gated = RequestView("GET", "/wine", "http", "shop.test", "127.0.0.1", {})
    key = rt.decisions.key(gated)
    decision = rt.decide(gated, key)
    assert decision.age_gated and rt.cached(key) is decision
    assert rt.usual(key, "/wine") is None
    # a decision that has a withdrawal signal to send (GPC over a stored choice)
    signal = view(sec_gpc="1")
    key = rt.decisions.key(signal)
    plain = rt.decide(signal, key)
    assert rt.usual(key, "/") is plain
    rt.decisions.put(key, replace(plain, signal_withdrawal=True), rt.clock(), rt._geo_seen)
    assert rt.cached(key).signal_withdrawal and rt.usual(key, "/") is None


def test_the_short_way_notices_a_new_geoip_generation_within_a_second():
    clock = Clock()
    rt = Runtime(Settings(secret_key=KEY, ledger=None), clock=clock)
    generation = [0]
    rt._geo_generation = lambda: generation[0]
    v = view()
    key = rt.decisions.key(v)
    decision = rt.decide(v, key)
    assert rt.usual(key, "/") is decision
    generation[0] = 1  # the database was replaced
    clock.now += 0.5
    assert rt.cached(key) is None  # the general way asks every time
    clock.now += 0.6  # past GEO_EVERY since it last asked
    assert rt.usual(key, "/") is None
    clock.now -= 100  # a clock set back asks again too
    rt.decide(v, key)
    generation[0] = 2
    clock.now -= 5
    assert rt.usual(key, "/") is None
