"""What a consent receipt is, how receipts chain, and what every ledger back-end offers.

This module decides:

* which facts a receipt may hold (:class:`ReceiptDraft` refuses a full IP
  address or an unknown method/age status and stores a raw User-Agent string
  as ``"Other"``, so a birth date, a full address or a User-Agent can never
  reach a row);
* how a receipt is hashed: over canonical JSON of *every* stored field
  (``seq`` and ``prev_hash`` included, only ``hash`` itself left out), so no
  column can change unnoticed (:func:`hash_receipt`). A keyed ledger uses
  HMAC-SHA256 with a key derived from ``ledger_key`` (or the first
  ``secret_key``) and signs its chain head (:func:`head_mac`), so a database
  writer without the key can neither recompute a receipt nor move the head;
  receipts stored before a ledger was keyed (``seq < keyed_from``) keep their
  plain SHA-256 and are covered by the first keyed receipt's ``prev_hash``;
* how a stored row is read back: strictly (:func:`receipt_from_row`); a value
  that is not in its canonical stored form is itself a sign of tampering;
* how a chain is checked (:func:`verify_chain`): gap-free ``seq`` from the
  anchor, each ``prev_hash`` equal to the previous ``hash`` (``"0" * 64``
  before the first receipt, or the anchor left behind by a purge), each
  ``hash`` recomputed, the last receipt equal to the recorded chain head, the
  head's signature, and any checkpoint the app logged elsewhere
  (:class:`Checkpoint`: a receipt the chain must still hold unchanged);
* that a purge deletes only a prefix of the chain (up to the first receipt
  that is still young enough) and records where it cut, so what is kept
  still verifies from that anchor.

Back-ends (``sqlite.py``, ``postgres.py``) only store and fetch; the rules live
here, and ``factory.py`` (above all three) picks the back-end for a URL.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, Self, runtime_checkable
from urllib.parse import unquote

from privguard.errors import LedgerError

__all__ = [
    "AGE_STATUSES",
    "CATEGORIES",
    "COLUMNS",
    "GENESIS_HASH",
    "METHODS",
    "UA_FAMILY_OTHER",
    "ChainHead",
    "Checkpoint",
    "Ledger",
    "LedgerKey",
    "MalformedRow",
    "Receipt",
    "ReceiptDraft",
    "StatsRow",
    "VerifyResult",
    "canonical_json",
    "draft_from_json",
    "draft_to_json",
    "derive_ledger_keys",
    "hash_receipt",
    "head_columns",
    "head_mac",
    "parse_checkpoints",
    "make_receipt",
    "read_head",
    "receipt_from_row",
    "receipt_to_row",
    "redact",
    "redact_url",
    "stats_rows",
    "verify_chain",
]

#: ``prev_hash`` of the first receipt of a ledger that was never purged.
GENESIS_HASH = "0" * 64

_log = logging.getLogger("privguard.ledger")
#: Seconds between two checkpoint lines in the app's log (one at the first append).
CHECKPOINT_INTERVAL = 60.0

#: How a choice was made (``gpc``/``dnt``: a browser signal, no click).
METHODS = frozenset({"banner", "form", "json", "age", "gpc", "dnt", "do-not-sell"})
#: Age answers a receipt may carry (never a birth date).
AGE_STATUSES = frozenset({"unknown", "adult", "minor"})
#: Consent categories of the policy, in display order.
CATEGORIES = ("necessary", "functionality", "performance", "marketing")

#: Stored columns, in table order. Every one of them is covered by the hash
#: except ``hash`` itself.
COLUMNS = (
    "seq",
    "id",
    "ts",
    "policy_version",
    "granted",
    "denied",
    "method",
    "regime",
    "country",
    "gpc",
    "dnt",
    "ip",
    "ua_family",
    "age_status",
    "prev_hash",
    "hash",
)

_MAX_TEXT = 128
_MAX_UA_FAMILY = 64
_HEX = frozenset("0123456789abcdef")
#: What a User-Agent string passed as ``ua_family`` is stored as.
UA_FAMILY_OTHER = "Other"


def _utc(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("receipt ts must be an aware datetime (UTC)")
    return ts.astimezone(UTC)


def _check_ip(ip: str) -> None:
    """Refuse anything that is not an already truncated address."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        raise ValueError(f"receipt ip {ip!r} is not an IP address") from None
    if str(addr) != ip:
        raise ValueError(f"receipt ip {ip!r} is not in canonical form")
    if isinstance(addr, ipaddress.IPv4Address):
        host_bits = int(addr) & 0xFF  # a /24 or shorter prefix zeroes the last byte
    else:
        host_bits = int(addr) & ((1 << 64) - 1)  # a /64 or shorter zeroes the interface id
    if host_bits:
        raise ValueError(f"receipt ip {ip!r} is not truncated; store only the truncated address")


def _check_text(
    name: str, value: object, *, optional: bool = False, limit: int = _MAX_TEXT
) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ValueError(f"receipt {name} must be a non-empty string of at most {limit} characters")
    if any(ch < " " for ch in value):
        raise ValueError(f"receipt {name} must not contain control characters")


def _ua_family(value: object) -> str | None:
    """A family name, or ``"Other"`` for anything that looks like a raw User-Agent.

    Replaced rather than refused: a receipt must never be lost over its UA family.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("receipt ua_family must be a string or None")
    if (
        not value.strip()
        or len(value) > _MAX_UA_FAMILY
        or any(ch < " " for ch in value)
        or "(" in value
        or "/" in value
    ):
        return UA_FAMILY_OTHER
    return value


def _categories(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError(f"receipt {name} must be a sequence of category names, not a string")
    out = tuple(sorted(set(values)))
    for value in out:
        _check_text(name, value, limit=32)
    return out


@dataclass(frozen=True, slots=True)
class ReceiptDraft:
    """One consent choice, as the consent/age endpoints describe it.

    The draft holds only what may be stored: ``ip`` must already be truncated
    (an IPv4 address with a zero last byte, an IPv6 address with a zero
    interface identifier), ``ua_family`` is a family name such as ``"Chrome"``
    (anything that looks like a raw User-Agent is stored as ``"Other"``), and
    the age is ``age_status`` alone (never a birth date). ``granted``/``denied``
    are normalised to sorted tuples; ``ts`` to UTC. Anything else raises
    :class:`ValueError` at construction.
    """

    id: str
    ts: datetime
    policy_version: str
    granted: tuple[str, ...]
    denied: tuple[str, ...]
    method: str
    regime: str
    country: str | None
    gpc: bool
    dnt: bool
    ip: str | None
    ua_family: str | None
    age_status: str = "unknown"

    def __post_init__(self) -> None:
        _check_text("id", self.id)
        object.__setattr__(self, "ts", _utc(self.ts))
        _check_text("policy_version", self.policy_version)
        granted = _categories("granted", self.granted)
        denied = _categories("denied", self.denied)
        if set(granted) & set(denied):
            raise ValueError("a category cannot be both granted and denied")
        object.__setattr__(self, "granted", granted)
        object.__setattr__(self, "denied", denied)
        if self.method not in METHODS:
            raise ValueError(f"receipt method must be one of {sorted(METHODS)}")
        _check_text("regime", self.regime, limit=32)
        _check_text("country", self.country, optional=True, limit=8)
        if not isinstance(self.gpc, bool) or not isinstance(self.dnt, bool):
            raise ValueError("receipt gpc and dnt must be booleans")
        if self.ip is not None:
            _check_ip(self.ip)
        object.__setattr__(self, "ua_family", _ua_family(self.ua_family))
        if self.age_status not in AGE_STATUSES:
            raise ValueError(f"receipt age_status must be one of {sorted(AGE_STATUSES)}")


_DRAFT_FIELDS = tuple(f.name for f in fields(ReceiptDraft))


@dataclass(frozen=True, slots=True)
class Receipt:
    """A stored receipt: the draft's fields plus its place in the hash chain.

    ``seq`` is the 1-based position in the chain, ``prev_hash`` the ``hash`` of
    the receipt before it (or of the purge anchor, or :data:`GENESIS_HASH`),
    and ``hash`` the SHA-256 of the canonical JSON of all other fields.
    """

    seq: int
    id: str
    ts: datetime
    policy_version: str
    granted: tuple[str, ...]
    denied: tuple[str, ...]
    method: str
    regime: str
    country: str | None
    gpc: bool
    dnt: bool
    ip: str | None
    ua_family: str | None
    age_status: str
    prev_hash: str
    hash: str

    @property
    def draft(self) -> ReceiptDraft:
        """The draft this receipt was made from."""
        return ReceiptDraft(**{name: getattr(self, name) for name in _DRAFT_FIELDS})

    def to_json(self) -> dict[str, Any]:
        """The receipt as a JSON-ready mapping (``ts`` as an ISO 8601 string)."""
        out = {name: getattr(self, name) for name in COLUMNS}
        out["ts"] = format_ts(self.ts)
        out["granted"] = list(self.granted)
        out["denied"] = list(self.denied)
        return out


@dataclass(frozen=True, slots=True)
class ChainHead:
    """Where the chain currently ends, and where it starts after purges.

    ``seq``/``hash`` belong to the newest receipt (or equal the anchor when the
    ledger is empty); ``anchor_seq``/``anchor_hash`` are those of the last
    purged receipt (``0`` and :data:`GENESIS_HASH` when nothing was purged).
    A keyed ledger names its key (``key_id``, a fingerprint, never the key),
    the first keyed receipt (``keyed_from``) and signs all of it (``mac``).
    """

    seq: int = 0
    hash: str = GENESIS_HASH
    anchor_seq: int = 0
    anchor_hash: str = GENESIS_HASH
    purged: int = 0
    keyed_from: int = 0
    key_id: str | None = None
    mac: str | None = None


@dataclass(frozen=True, slots=True)
class LedgerKey:
    """The keys of one chain, derived from one secret (see :func:`derive_ledger_keys`)."""

    chain: bytes
    head: bytes
    id: str

    def __repr__(self) -> str:
        return f"LedgerKey(id={self.id!r})"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A receipt the chain must still hold: ``seq`` (``None``: any) with ``hash``.

    Written to the app's log (``privguard ledger checkpoint seq=… hash=… mac=…``)
    or recorded by an auditor from ``ledger verify``; ``mac`` proves a logged
    line came from a holder of the key.
    """

    seq: int | None
    hash: str
    mac: str | None = None


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of :meth:`Ledger.verify`.

    ``checked`` counts receipts that passed before the first bad one;
    ``first_bad_seq``/``first_bad_id`` name that receipt (``None`` when the
    chain is whole, or when the break is after the last receipt); ``reason``
    says what is wrong in one line.
    """

    ok: bool
    checked: int
    first_bad_seq: int | None = None
    first_bad_id: str | None = None
    reason: str = ""
    #: the ledger is keyed and no matching key was given (not a sign of tampering)
    needs_key: bool = False
    #: first receipt under the key (``0``: the ledger is not keyed)
    keyed_from: int = 0
    #: checkpoints compared with the chain (purged ones cannot be)
    checkpoints: int = 0

    @property
    def first_bad(self) -> str | None:
        """``"seq 12 (id …)"`` for messages, or ``None``."""
        if self.first_bad_seq is None:
            return None
        return f"seq {self.first_bad_seq} (id {self.first_bad_id})"


@dataclass(frozen=True, slots=True)
class StatsRow:
    """Choices for one month, regime and category: how often granted / denied."""

    month: str
    regime: str
    category: str
    granted: int
    denied: int


@runtime_checkable
class Ledger(Protocol):
    """A hash-chained, append-only store of consent receipts."""

    def append(self, draft: ReceiptDraft) -> Receipt:
        """Store one receipt at the head of the chain (idempotent per receipt id)."""
        ...

    def append_many(self, drafts: Sequence[ReceiptDraft]) -> list[Receipt]:
        """Store several receipts in order, in one transaction."""
        ...

    def iter_receipts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        receipt_id: str | None = None,
    ) -> Iterator[Receipt]:
        """Receipts in chain order, filtered by ``since <= ts < until`` and id."""
        ...

    def verify(self, expect: Sequence[Checkpoint] = ()) -> VerifyResult:
        """Check the whole chain, its signed head and the ``expect``-ed checkpoints."""
        ...

    def purge(self, older_than: timedelta, now: datetime) -> int:
        """Delete receipts older than ``now - older_than``; return how many."""
        ...

    def stats(self, since: datetime | None = None, until: datetime | None = None) -> list[StatsRow]:
        """Choices per month, regime and category."""
        ...

    def head(self) -> ChainHead:
        """The current chain head and purge anchor."""
        ...

    def close(self) -> None:
        """Release every connection."""
        ...


class ChainLedger:
    """What every back-end derives from its ``append_many`` and ``iter_receipts``.

    It also holds the chain keys (``keys``, the first keys a new ledger) and
    logs a checkpoint of the head after appends, at most every
    :data:`CHECKPOINT_INTERVAL` seconds.
    """

    _keys: tuple[LedgerKey, ...] = ()
    _keyed_at_open = False  # the app keyed (or found keyed) the chain: it must stay keyed
    _last_checkpoint: float | None = None

    def _key_for(self, head: ChainHead, *, writing: bool) -> LedgerKey | None:
        """The key that continues ``head`` (``None``: an unkeyed ledger, opened without keys)."""
        if head.key_id is None:
            if writing and self._keyed_at_open:
                raise LedgerError(
                    "the chain head names no key although this ledger was keyed at open: "
                    "run `privguard ledger verify`"
                )
            return None
        for key in self._keys:
            if key.id == head.key_id:
                return key
        raise LedgerError(
            f"the ledger is keyed (key id {head.key_id}) and none of the given keys matches: "
            "set ledger_key (or secret_key) to the key it was made with"
        )

    def _keyed_head(self, head: ChainHead) -> ChainHead | None:
        """``head`` keyed from its next receipt, when this ledger has keys and it has none."""
        if not self._keys:
            return None
        self._keyed_at_open = True
        if head.key_id is not None:
            return None
        key = self._keys[0]
        if head.seq == head.anchor_seq == 0:  # a new ledger: keyed from its first receipt
            return seal_head(replace(head, keyed_from=1, key_id=key.id), key)
        _log.warning(
            "privguard ledger: keying the chain from seq %d (key id %s); receipts before it "
            "keep plain SHA-256 hashes, covered by the first keyed receipt",
            head.seq + 1,
            key.id,
        )
        return seal_head(replace(head, keyed_from=head.seq + 1, key_id=key.id), key)

    def _advanced(self, head: ChainHead, seq: int, prev: str, key: LedgerKey | None) -> ChainHead:
        """The head after appends up to ``seq``/``prev``, signed when keyed."""
        new = replace(head, seq=seq, hash=prev)
        return seal_head(new, key) if key is not None else new

    def _log_checkpoint(self, head: ChainHead, key: LedgerKey | None) -> None:
        now = time.monotonic()
        last = self._last_checkpoint
        if key is None or (last is not None and now - last < CHECKPOINT_INTERVAL):
            return
        self._last_checkpoint = now
        _log.info(
            "privguard ledger checkpoint seq=%d hash=%s mac=%s",
            head.seq,
            head.hash,
            checkpoint_mac(key, head.seq, head.hash),
        )

    def append_many(self, drafts: Sequence[ReceiptDraft]) -> list[Receipt]:
        raise NotImplementedError

    def iter_receipts(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        receipt_id: str | None = None,
    ) -> Iterator[Receipt]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def append(self, draft: ReceiptDraft) -> Receipt:
        """Store ``draft`` at the head of the chain; an already stored id returns that receipt."""
        return self.append_many((draft,))[0]

    def stats(self, since: datetime | None = None, until: datetime | None = None) -> list[StatsRow]:
        """Choices per month, regime and category."""
        return stats_rows(self.iter_receipts(since=since, until=until))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- canonical forms -------------------------------------------------------------------


def format_ts(ts: datetime) -> str:
    """The one stored/hashed text form of a time: UTC, microseconds, ``+00:00``."""
    return _utc(ts).isoformat(timespec="microseconds")


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON: the byte-exact form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _hash_payload(seq: int, draft: ReceiptDraft, prev_hash: str) -> dict[str, Any]:
    payload: dict[str, Any] = {name: getattr(draft, name) for name in _DRAFT_FIELDS}
    payload["ts"] = format_ts(draft.ts)
    payload["granted"] = list(draft.granted)
    payload["denied"] = list(draft.denied)
    payload["seq"] = seq
    payload["prev_hash"] = prev_hash
    return payload


def hash_receipt(seq: int, draft: ReceiptDraft, prev_hash: str, key: bytes | None = None) -> str:
    """SHA-256 (hex) over every stored field except ``hash``; HMAC-SHA256 with a chain ``key``."""
    data = canonical_json(_hash_payload(seq, draft, prev_hash)).encode("utf-8")
    if key is not None:
        return hmac.new(key, data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()


def make_receipt(
    seq: int, draft: ReceiptDraft, prev_hash: str, key: LedgerKey | None = None
) -> Receipt:
    """Chain ``draft`` after a receipt whose hash is ``prev_hash`` (keyed with ``key``)."""
    values = {name: getattr(draft, name) for name in _DRAFT_FIELDS}
    digest = hash_receipt(seq, draft, prev_hash, key.chain if key is not None else None)
    return Receipt(seq=seq, prev_hash=prev_hash, hash=digest, **values)


def derive_ledger_keys(secrets: Iterable[bytes | str]) -> tuple[LedgerKey, ...]:
    """One :class:`LedgerKey` per secret, in order (the first keys a new ledger).

    Each secret gives a chain key, a head key and a public fingerprint through
    HMAC-SHA256 with their own labels, so neither the cookie-signing use of a
    ``secret_key`` nor one another can be replayed as the other.
    """
    out = []
    for secret in secrets:
        raw = secret.encode("utf-8") if isinstance(secret, str) else secret

        def sub(label: bytes, raw: bytes = raw) -> bytes:
            return hmac.new(raw, b"privguard.ledger." + label, hashlib.sha256).digest()

        out.append(LedgerKey(sub(b"chain.v1"), sub(b"head.v1"), sub(b"key-id.v1").hex()[:16]))
    return tuple(out)


def _head_fields(head: ChainHead) -> bytes:
    fields_ = [
        "privguard.ledger.head.v1",
        head.seq,
        head.hash,
        head.anchor_seq,
        head.anchor_hash,
        head.purged,
        head.keyed_from,
        head.key_id,
    ]
    return canonical_json(fields_).encode("utf-8")


def head_mac(key: LedgerKey, head: ChainHead) -> str:
    """The signature of every field of ``head`` but ``mac``."""
    return hmac.new(key.head, _head_fields(head), hashlib.sha256).hexdigest()


def seal_head(head: ChainHead, key: LedgerKey) -> ChainHead:
    """``head`` with its signature."""
    return replace(head, mac=head_mac(key, head))


def checkpoint_mac(key: LedgerKey, seq: int, digest: str) -> str:
    """The signature of a checkpoint line (its own label: no head signature is one)."""
    data = canonical_json(["privguard.ledger.checkpoint.v1", seq, digest]).encode("utf-8")
    return hmac.new(key.head, data, hashlib.sha256).hexdigest()


_CHECKPOINT_LINE = re.compile(
    r"privguard ledger checkpoint seq=(\d+) hash=([0-9a-f]{64})(?: mac=([0-9a-f]{64}))?"
)


def parse_checkpoints(text: str) -> list[Checkpoint]:
    """Every checkpoint line in ``text`` (an app log, or a file an auditor keeps)."""
    return [
        Checkpoint(int(m.group(1)), m.group(2), m.group(3)) for m in _CHECKPOINT_LINE.finditer(text)
    ]


#: Columns of the chain head row: five in schema 1, eight since keying (schema 2).
_HEAD_V1 = ("seq", "hash", "anchor_seq", "anchor_hash", "purged")
_HEAD_V2 = (*_HEAD_V1, "keyed_from", "key_id", "mac")


def head_columns(schema: int) -> tuple[str, ...]:
    """The chain head's stored columns under ``schema`` (the order :func:`read_head` reads)."""
    return _HEAD_V2 if schema >= 2 else _HEAD_V1


def read_head(row: Sequence[Any] | None) -> ChainHead:
    """A stored head row: five v1 columns, or eight since keying (schema 2)."""
    if row is None:
        raise LedgerError("ledger chain head is missing")
    return ChainHead(*row)


def receipt_to_row(receipt: Receipt, *, ts_as_text: bool, bool_as_int: bool) -> tuple[Any, ...]:
    """The values stored for ``receipt``, in :data:`COLUMNS` order."""
    row: list[Any] = []
    for name in COLUMNS:
        value = getattr(receipt, name)
        if name == "ts":
            value = format_ts(value) if ts_as_text else value
        elif name in ("granted", "denied"):
            value = canonical_json(list(value))
        elif name in ("gpc", "dnt") and bool_as_int:
            value = int(value)
        row.append(value)
    return tuple(row)


class MalformedRow(LedgerError, ValueError):
    """A stored row whose values are not in their canonical form (a sign of tampering)."""

    def __init__(self, seq: object, receipt_id: object, column: str, detail: str) -> None:
        self.seq = seq if isinstance(seq, int) else None
        self.receipt_id = receipt_id if isinstance(receipt_id, str) else None
        self.column = column
        super().__init__(f"column {column!r} is malformed: {detail}")


def _strict_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise ValueError(f"{value!r} is not 0/1/true/false")


def _strict_ts(value: object) -> datetime:
    if isinstance(value, datetime):
        return _utc(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a timestamp")
    ts = datetime.fromisoformat(value)
    if format_ts(ts) != value:
        raise ValueError(f"{value!r} is not in canonical form")
    return _utc(ts)


def _strict_categories(value: object) -> tuple[str, ...]:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not JSON text")
    items = json.loads(value)
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ValueError(f"{value!r} is not a JSON list of names")
    if canonical_json(sorted(set(items))) != value:
        raise ValueError(f"{value!r} is not in canonical form")
    return tuple(items)


def _strict_hash(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise ValueError(f"{value!r} is not a SHA-256 hex digest")
    return value


def receipt_from_row(row: Sequence[Any]) -> Receipt:
    """Decode a stored row (in :data:`COLUMNS` order), refusing non-canonical values.

    Raises :class:`MalformedRow` naming the column, so :func:`verify_chain`
    can report it as tampering.
    """
    values = dict(zip(COLUMNS, row, strict=True))
    seq, rid = values["seq"], values["id"]
    decoders = {
        "ts": _strict_ts,
        "granted": _strict_categories,
        "denied": _strict_categories,
        "gpc": _strict_bool,
        "dnt": _strict_bool,
        "prev_hash": _strict_hash,
        "hash": _strict_hash,
    }
    decoded: dict[str, Any] = {}
    for name in COLUMNS:
        raw = values[name]
        try:
            if name == "seq":
                if type(raw) is not int or raw < 1:
                    raise ValueError(f"{raw!r} is not a positive integer")
                decoded[name] = raw
            elif name in decoders:
                decoded[name] = decoders[name](raw)
            else:
                if raw is not None and not isinstance(raw, str):
                    raise ValueError(f"{raw!r} is not text")
                decoded[name] = raw
        except ValueError as exc:
            raise MalformedRow(seq, rid, name, str(exc)) from None
    try:
        draft = ReceiptDraft(**{name: decoded[name] for name in _DRAFT_FIELDS})
    except (TypeError, ValueError) as exc:
        raise MalformedRow(seq, rid, "receipt", str(exc)) from None
    if draft.granted != decoded["granted"] or draft.denied != decoded["denied"]:
        raise MalformedRow(seq, rid, "granted", "categories are not sorted")
    if draft.ua_family != decoded["ua_family"]:
        raise MalformedRow(seq, rid, "ua_family", "not a family name")
    return Receipt(**decoded)


def draft_to_json(draft: ReceiptDraft) -> str:
    """One spool line (without the newline) for ``draft``."""
    payload: dict[str, Any] = {name: getattr(draft, name) for name in _DRAFT_FIELDS}
    payload["ts"] = format_ts(draft.ts)
    payload["granted"] = list(draft.granted)
    payload["denied"] = list(draft.denied)
    return canonical_json(payload)


def draft_from_json(line: str) -> ReceiptDraft:
    """Parse a spool line written by :func:`draft_to_json` (``ValueError`` if it is not one)."""
    data = json.loads(line)
    if not isinstance(data, Mapping) or set(data) != set(_DRAFT_FIELDS):
        raise ValueError("not a receipt draft")
    values = dict(data)
    values["ts"] = datetime.fromisoformat(values["ts"])
    values["granted"] = tuple(values["granted"])
    values["denied"] = tuple(values["denied"])
    return ReceiptDraft(**values)


# -- chain rules -----------------------------------------------------------------------


@dataclass(slots=True)
class _ChainCheck:
    """Running state of :func:`verify_chain`."""

    expected_seq: int
    expected_prev: str
    checked: int = 0


def _fail(state: _ChainCheck, reason: str, **kw: Any) -> VerifyResult:
    return VerifyResult(False, state.checked, reason=reason, **kw)


def verify_chain(
    rows: Iterable[Sequence[Any]],
    head: ChainHead,
    keys: Sequence[LedgerKey] = (),
    expect: Sequence[Checkpoint] = (),
) -> VerifyResult:
    """Check stored rows (in ``seq`` order) against each other, the signed head and ``expect``.

    With ``keys`` the ledger must be keyed with one of them; a keyed ledger
    without its key is reported with ``needs_key`` (it cannot be checked).
    """
    state = _ChainCheck(expected_seq=head.anchor_seq + 1, expected_prev=head.anchor_hash)
    key: LedgerKey | None = None
    if head.key_id is not None:
        key = next((k for k in keys if k.id == head.key_id), None)
        if key is None:
            given = "none of the given keys matches" if keys else "no key was given"
            return _fail(
                state,
                f"the ledger is keyed (key id {head.key_id}) and {given}: set "
                "PRIVGUARD_LEDGER_KEY (or PRIVGUARD_SECRET_KEY) to its key",
                needs_key=True,
            )
        if head.mac is None or not hmac.compare_digest(head.mac, head_mac(key, head)):
            return _fail(
                state,
                "the chain head's signature does not match: the head (seq, hash, purge "
                "anchor or key) was rewritten without the key",
                keyed_from=head.keyed_from,
            )
    elif keys:
        return _fail(
            state,
            "the ledger is not keyed: a database writer could rewrite it unnoticed "
            "(the app keys it from its next receipt when it opens it with this version)",
        )
    by_seq = {c.seq: c for c in expect if c.seq is not None}
    by_hash = {c.hash for c in expect if c.seq is None}
    seen_hashes: set[str] = set()
    for checkpoint in expect:
        if key is not None and checkpoint.mac is not None and checkpoint.seq is not None:
            if not hmac.compare_digest(
                checkpoint.mac, checkpoint_mac(key, checkpoint.seq, checkpoint.hash)
            ):
                return _fail(
                    state,
                    f"checkpoint seq {checkpoint.seq} is not signed by the ledger's key "
                    "(a forged or foreign checkpoint line)",
                )
    anchor = by_seq.get(head.anchor_seq)
    if anchor is not None and anchor.hash != head.anchor_hash:
        return _fail(state, f"checkpoint seq {head.anchor_seq} does not match the purge anchor")
    keyed_from = head.keyed_from if key is not None else None
    for row in rows:
        try:
            receipt = receipt_from_row(row)
        except MalformedRow as exc:
            return VerifyResult(False, state.checked, exc.seq, exc.receipt_id, str(exc))
        chain_key = key.chain if key is not None and receipt.seq >= (keyed_from or 0) else None
        bad = _check_link(receipt, state, chain_key)
        if not bad:
            expected = by_seq.get(receipt.seq)
            if expected is not None and expected.hash != receipt.hash:
                bad = (
                    f"the receipt differs from checkpoint seq {receipt.seq} logged earlier: "
                    "it was rewritten"
                )
        if bad:
            return VerifyResult(False, state.checked, receipt.seq, receipt.id, bad)
        if by_hash:
            seen_hashes.add(receipt.hash)
        state.checked += 1
        state.expected_seq = receipt.seq + 1
        state.expected_prev = receipt.hash
    last = state.expected_seq - 1
    if last != head.seq or state.expected_prev != head.hash:
        return _fail(
            state,
            f"chain ends at seq {last} but its recorded head is seq "
            f"{head.seq}: receipts after the last one were removed or the head was altered",
        )
    beyond = [seq for seq in by_seq if seq > last]
    if beyond:
        return _fail(
            state,
            f"a checkpoint names seq {max(beyond)} but the chain ends at seq {last}: "
            "the newest receipts were cut off and the head rolled back",
        )
    missing = by_hash - seen_hashes - {head.anchor_hash}
    if missing:
        return _fail(
            state,
            f"expected head {sorted(missing)[0]} is not in the chain: receipts were "
            "removed or rewritten",
        )
    compared = sum(1 for c in expect if c.seq is None or c.seq >= head.anchor_seq)
    return VerifyResult(True, state.checked, keyed_from=head.keyed_from, checkpoints=compared)


def _check_link(receipt: Receipt, state: _ChainCheck, key: bytes | None) -> str:
    if receipt.seq != state.expected_seq:
        return (
            f"expected seq {state.expected_seq}, found seq {receipt.seq}: "
            "a receipt was removed or renumbered"
        )
    if receipt.prev_hash != state.expected_prev:
        return "prev_hash does not match the previous receipt's hash"
    draft = receipt.draft
    if not hmac.compare_digest(
        hash_receipt(receipt.seq, draft, receipt.prev_hash, key), receipt.hash
    ):
        return "hash does not match the receipt's content: a stored value was changed"
    return ""


def stats_rows(receipts: Iterable[Receipt]) -> list[StatsRow]:
    """Count grants and denials per month (``YYYY-MM``, UTC), regime and category."""
    counts: dict[tuple[str, str, str], list[int]] = {}
    for receipt in receipts:
        month = receipt.ts.strftime("%Y-%m")
        for category in receipt.granted:
            counts.setdefault((month, receipt.regime, category), [0, 0])[0] += 1
        for category in receipt.denied:
            counts.setdefault((month, receipt.regime, category), [0, 0])[1] += 1
    order = {name: index for index, name in enumerate(CATEGORIES)}
    keys = sorted(counts, key=lambda k: (k[0], k[1], order.get(k[2], len(order)), k[2]))
    return [StatsRow(m, r, c, counts[(m, r, c)][0], counts[(m, r, c)][1]) for m, r, c in keys]


def check_cutoff(older_than: timedelta, now: datetime) -> datetime:
    """``now - older_than``, refusing a negative age."""
    if older_than < timedelta(0):
        raise ValueError("older_than must not be negative")
    return _utc(now) - older_than


# -- opening ---------------------------------------------------------------------------

_URI_PASSWORD = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/@?#]*?:([^@/?#]*)@")
_PARAM_PASSWORD = re.compile(r"(?:^|[?&\s])password\s*=\s*('(?:[^'\\]|\\.)*'|[^&\s]*)", re.I)


def redact(text: str, url: object) -> str:
    """``text`` with every password found in ``url`` replaced by ``***``.

    Covers ``scheme://user:password@host``, ``?password=…`` and libpq's
    ``password=…`` key/value form, raw and percent-decoded, so neither error
    messages nor reprs ever carry a database password.
    """
    if not isinstance(url, str):
        return text
    found = [m.group(1) for m in (_URI_PASSWORD.match(url),) if m]
    found += [m.group(1).strip("'") for m in _PARAM_PASSWORD.finditer(url)]
    secrets = {v for f in found if f for v in (f, unquote(f))}
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def redact_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``."""
    return redact(url, url)
