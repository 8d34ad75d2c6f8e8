"""The chain rules without a database: hashing, strict decoding, verification."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from privguard.ledger import GENESIS_HASH, ChainHead, ReceiptDraft, hash_receipt
from privguard.ledger.base import (
    COLUMNS,
    canonical_json,
    make_receipt,
    receipt_from_row,
    receipt_to_row,
    verify_chain,
)

Draft = Callable[..., ReceiptDraft]

PINNED = ReceiptDraft(
    id="pinned-receipt",
    ts=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    policy_version="1",
    granted=("necessary",),
    denied=("functionality", "marketing", "performance"),
    method="banner",
    regime="gdpr",
    country="DE",
    gpc=True,
    dnt=False,
    ip="203.0.113.0",
    ua_family="Firefox",
    age_status="adult",
)


def test_hash_format_is_pinned() -> None:
    """The hash is a stored contract: changing its input breaks every existing ledger."""
    payload = (
        '{"age_status":"adult","country":"DE","denied":["functionality","marketing",'
        '"performance"],"dnt":false,"gpc":true,"granted":["necessary"],"id":"pinned-receipt",'
        '"ip":"203.0.113.0","method":"banner","policy_version":"1","prev_hash":"'
        + GENESIS_HASH
        + '","regime":"gdpr","seq":1,"ts":"2026-01-02T03:04:05.000006+00:00",'
        '"ua_family":"Firefox"}'
    )
    import hashlib

    assert hash_receipt(1, PINNED, GENESIS_HASH) == hashlib.sha256(payload.encode()).hexdigest()


def test_canonical_json_is_compact_sorted_and_unicode() -> None:
    assert canonical_json({"b": 1, "a": ["é"]}) == '{"a":["é"],"b":1}'


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        pytest.param({"ts": datetime(2026, 1, 1)}, "aware", id="naive-ts"),
        pytest.param({"granted": ("marketing",), "denied": ("marketing",)}, "both", id="overlap"),
        pytest.param({"granted": "necessary"}, "not a string", id="granted-string"),
        pytest.param({"method": "scroll"}, "method", id="method"),
        pytest.param({"age_status": "16"}, "age_status", id="age-status"),
        pytest.param({"id": ""}, "id", id="empty-id"),
        pytest.param({"id": "x" * 129}, "id", id="long-id"),
        pytest.param({"country": "Germany!!!"}, "country", id="long-country"),
        pytest.param({"gpc": 1}, "booleans", id="gpc-int"),
        pytest.param({"ip": "203.0.113.7"}, "not truncated", id="ipv4-host"),
        pytest.param({"ip": "2001:db8::1"}, "not truncated", id="ipv6-host"),
        pytest.param({"ip": "2001:0db8::"}, "canonical", id="ipv6-non-canonical"),
        pytest.param({"regime": "gdpr\n"}, "control", id="control-char"),
    ],
)
def test_draft_refuses(draft: Draft, overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        draft(1, **overrides)


def test_draft_normalises(draft: Draft) -> None:
    d = draft(
        1,
        ts=datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2))),
        granted=["performance", "necessary", "necessary"],
    )
    assert d.ts == datetime(2026, 1, 1, 12, tzinfo=UTC) and d.ts.tzinfo is UTC
    assert d.granted == ("necessary", "performance")


def _chain(drafts: list[ReceiptDraft]) -> list[tuple[Any, ...]]:
    rows, prev = [], GENESIS_HASH
    for seq, d in enumerate(drafts, 1):
        r = make_receipt(seq, d, prev)
        rows.append(receipt_to_row(r, ts_as_text=True, bool_as_int=True))
        prev = r.hash
    return rows


def test_rows_round_trip(draft: Draft) -> None:
    rows = _chain([draft(i) for i in range(3)])
    assert [receipt_from_row(row).seq for row in rows] == [1, 2, 3]
    head = ChainHead(seq=3, hash=rows[-1][-1])
    assert verify_chain(rows, head).ok


_VALUES: dict[str, list[Any]] = {
    "seq": [0, 2, 99, "1"],
    "id": ["other", ""],
    "ts": ["2026-03-01T12:00:00.000001+00:00", "2026-03-01T12:00:00+00:00", 0],
    "policy_version": ["2", ""],
    "granted": ['["marketing"]', "[]", '["necessary"]x', '["necessary","necessary"]'],
    "denied": ['["marketing"]', "[]", "null"],
    "method": ["form", "scroll"],
    "regime": ["notice", ""],
    "country": ["FR", None, ""],
    "gpc": [1, 2, "0", None],
    "dnt": [0, -1, True],
    "ip": ["198.51.100.0", None, "203.0.113.1"],
    "ua_family": ["Safari", None, "Mozilla/5.0 (X11)"],
    "age_status": ["minor", "adult", ""],
    "prev_hash": ["1" * 64, "0" * 63, None],
    "hash": ["2" * 64, ("0" * 63) + "g"],
}


def test_the_mutation_table_names_every_column() -> None:
    assert set(_VALUES) == set(COLUMNS)


@settings(max_examples=300, deadline=None)
@given(data=st.data(), n=st.integers(1, 6))
def test_any_single_change_is_detected(data: st.DataObject, n: int) -> None:
    drafts = [
        ReceiptDraft(
            id=f"id-{i}",
            ts=datetime(2026, 3, 1, 12, tzinfo=UTC) + timedelta(minutes=i),
            policy_version="1",
            granted=("necessary",),
            denied=("functionality",),
            method="banner",
            regime="gdpr",
            country="DE",
            gpc=False,
            dnt=True,
            ip="203.0.113.0",
            ua_family="Chrome",
            age_status="unknown",
        )
        for i in range(n)
    ]
    rows = [list(row) for row in _chain(drafts)]
    head = ChainHead(seq=n, hash=rows[-1][-1])
    index = data.draw(st.integers(0, n - 1), label="row")
    column = data.draw(st.sampled_from(COLUMNS), label="column")
    position = COLUMNS.index(column)
    value = data.draw(
        st.sampled_from([v for v in _VALUES[column] if v != rows[index][position]]), label="value"
    )
    rows[index][position] = value
    result = verify_chain(rows, head)
    assert not result.ok
    assert result.checked <= index + (1 if column == "seq" else 0)
