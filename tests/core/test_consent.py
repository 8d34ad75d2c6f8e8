import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from privguard.core.categories import Category
from privguard.core.consent import CONSENT_SALT, ConsentCodec, ConsentState

KEY_A = b"a" * 32
KEY_B = b"b" * 32
ALL = frozenset(Category)


def state(granted=ALL, version="1", **kw):
    return ConsentState(version=version, granted=granted, receipt_id="r1", **kw)


def test_round_trip_keeps_everything_but_signing_time():
    codec = ConsentCodec([KEY_A], max_age=3600)
    s = state(
        frozenset({Category.NECESSARY, Category.PERFORMANCE}),
        age_status="adult",
        age_threshold=16,
        age_country="DE",
    )
    loaded = codec.load(codec.dump(s), time.time())
    assert loaded is not None
    assert loaded.granted == s.granted
    assert (loaded.age_status, loaded.age_threshold, loaded.age_country) == ("adult", 16, "DE")
    assert loaded.receipt_id == "r1"
    assert abs(loaded.timestamp - time.time()) < 5


def test_no_choice_is_none_not_empty():
    codec = ConsentCodec([KEY_A], max_age=3600)
    loaded = codec.load(
        codec.dump(state(granted=None, age_status="minor", age_threshold=16)), time.time()
    )
    assert loaded is not None and loaded.granted is None and loaded.age_status == "minor"


def test_first_key_signs_and_every_key_verifies():
    old = ConsentCodec([KEY_A], max_age=3600)
    rotated = ConsentCodec([KEY_B, KEY_A], max_age=3600)
    now = time.time()
    assert rotated.load(old.dump(state()), now) is not None  # old tokens still verify
    new_token = rotated.dump(state())
    assert ConsentCodec([KEY_B], max_age=3600).load(new_token, now) is not None
    assert ConsentCodec([KEY_A], max_age=3600).load(new_token, now) is None


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda v: v[:-2] + ("AA" if not v.endswith("AA") else "BB"), id="signature"),
        pytest.param(lambda v: "x" + v, id="prefix"),
        pytest.param(lambda v: v[: len(v) // 2], id="truncated"),
        pytest.param(lambda v: "", id="empty"),
        pytest.param(lambda v: "a" * 5000, id="oversize"),
        pytest.param(lambda v: v.replace(".", "", 1), id="no-separator"),
    ],
)
def test_tampered_cookie_is_no_choice(mutate):
    codec = ConsentCodec([KEY_A], max_age=3600)
    assert codec.load(mutate(codec.dump(state())), time.time()) is None


def test_expired_cookie_is_no_choice():
    codec = ConsentCodec([KEY_A], max_age=60)
    token = codec.dump(state())
    assert codec.load(token, time.time()) is not None
    assert codec.load(token, time.time() + 61) is None  # cached value, still re-checked


def test_valid_signature_with_bad_payload_is_no_choice():
    signer = URLSafeTimedSerializer(
        [KEY_A], salt=CONSENT_SALT, signer_kwargs={"digest_method": __import__("hashlib").sha256}
    )
    codec = ConsentCodec([KEY_A], max_age=3600)
    for payload in (
        {"v": 1},
        {"v": "1", "g": ["ads"]},
        {"v": "1", "g": "all"},
        [1, 2],
        {"v": "1", "a": "teen"},
        {"v": "1", "r": 5},
    ):
        assert codec.load(signer.dumps(payload), time.time()) is None


def test_other_salt_cannot_be_replayed_as_consent():
    other = URLSafeTimedSerializer([KEY_A], salt="privguard.csrf.v1")
    codec = ConsentCodec([KEY_A], max_age=3600)
    assert codec.load(other.dumps({"v": "1", "g": ["marketing"]}), time.time()) is None


def test_cache_is_bounded():
    codec = ConsentCodec([KEY_A], max_age=3600, cache_size=10)
    for i in range(50):
        codec.load(f"garbage{i}", time.time())
    assert len(codec._cache) <= 10


@given(st.text(max_size=300))
def test_garbage_never_raises_and_never_grants(value):
    codec = ConsentCodec([KEY_A], max_age=3600)
    assert codec.load(value, time.time()) is None


@pytest.mark.parametrize(
    ("payload", "regime"),
    [
        pytest.param({"v": "1", "g": ["marketing"], "rg": "us-optout"}, "us-optout", id="stored"),
        pytest.param({"v": "1", "g": ["marketing"]}, None, id="older-cookie-without-regime"),
    ],
)
def test_regime_of_the_choice_is_read_back(payload, regime):
    loaded = ConsentState.from_payload(payload)
    assert loaded is not None and loaded.regime == regime


@pytest.mark.parametrize("bad", [1, ["gdpr"], "x" * 33], ids=["int", "list", "too-long"])
def test_malformed_regime_is_no_cookie(bad):
    assert ConsentState.from_payload({"v": "1", "g": [], "rg": bad}) is None


def test_regime_is_only_stored_with_a_choice():
    assert "rg" not in state(None, regime="gdpr").to_payload()
    assert state(ALL, regime="gdpr").to_payload()["rg"] == "gdpr"
