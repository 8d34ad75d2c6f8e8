"""The consent cookie: what it holds, how it is signed, and when it counts.

The cookie is signed with itsdangerous. ``secret_key`` may be a list: the
**first** key signs and every key verifies (itsdangerous itself signs with the
last, so the list is reversed here, once). A tampered, expired, malformed or
foreign-salt cookie is simply "no cookie": :meth:`ConsentCodec.load` never
raises.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from threading import Lock

from itsdangerous import BadData, URLSafeTimedSerializer

from privguard.core.categories import NON_ESSENTIAL, Category, parse_category

__all__ = ["ConsentState", "ConsentCodec", "CONSENT_SALT", "CSRF_SALT"]

CONSENT_SALT = "privguard.consent.v1"
CSRF_SALT = "privguard.csrf.v1"
_AGE_STATUSES = frozenset({"unknown", "adult", "minor"})


@dataclass(frozen=True, slots=True)
class ConsentState:
    """What the consent cookie says.

    ``granted`` is ``None`` when the visitor has made no choice yet (the cookie
    may still carry an age answer). ``regime`` names the regime the choice was
    made under (``None`` in cookies written before it was recorded: treated as
    made elsewhere, see :func:`privguard.core.decision.decide`). ``timestamp``
    is the signing time (epoch s), taken from the signature, never from the payload.
    """

    version: str
    granted: frozenset[Category] | None
    receipt_id: str | None = None
    timestamp: int = 0
    age_status: str = "unknown"
    age_threshold: int | None = None
    age_country: str | None = None
    regime: str | None = None

    def to_payload(self) -> dict[str, object]:
        """Compact JSON-able form stored in the cookie."""
        data: dict[str, object] = {"v": self.version}
        if self.granted is not None:
            data["g"] = sorted(c.value for c in self.granted)
            if self.regime is not None:
                data["rg"] = self.regime
        if self.receipt_id:
            data["r"] = self.receipt_id
        if self.age_status != "unknown":
            data["a"] = self.age_status
            data["at"] = self.age_threshold
            data["ac"] = self.age_country
        return data

    @classmethod
    def from_payload(cls, data: object) -> ConsentState | None:
        """Rebuild from a verified payload; ``None`` when its shape is wrong."""
        if not isinstance(data, dict):
            return None
        version = data.get("v")
        if not isinstance(version, str):
            return None
        granted: frozenset[Category] | None = None
        raw = data.get("g")
        if raw is not None:
            if not isinstance(raw, list):
                return None
            cats = {parse_category(x) for x in raw}
            if None in cats:
                return None
            granted = frozenset(c for c in cats if c is not None) & NON_ESSENTIAL
            granted |= {Category.NECESSARY}
        receipt = data.get("r")
        age = data.get("a", "unknown")
        threshold = data.get("at")
        country = data.get("ac")
        if receipt is not None and not isinstance(receipt, str):
            return None
        if age not in _AGE_STATUSES:
            return None
        if threshold is not None and (
            not isinstance(threshold, int) or isinstance(threshold, bool)
        ):
            return None
        if country is not None and not isinstance(country, str):
            return None
        regime = data.get("rg")
        if regime is not None and (not isinstance(regime, str) or len(regime) > 32):
            return None
        return cls(version, granted, receipt, 0, str(age), threshold, country, regime)


class ConsentCodec:
    """Signs and verifies consent cookies; caches verified values (bounded).

    The cache maps the exact cookie value to its decoded state, so a returning
    visitor costs one dict lookup instead of an HMAC and a JSON parse.
    """

    def __init__(self, secret_keys: Sequence[bytes], max_age: int, cache_size: int = 4096):
        # itsdangerous signs with the last key; privguard's contract: the first signs.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(secret_keys)),
            salt=CONSENT_SALT,
            serializer=json,
            signer_kwargs={"digest_method": hashlib.sha256},
        )
        self._max_age = max_age
        self._cache: OrderedDict[str, ConsentState | None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = Lock()

    def dump(self, state: ConsentState) -> str:
        """The signed cookie value for ``state``."""
        value = self._serializer.dumps(state.to_payload())
        return value if isinstance(value, str) else value.decode("ascii")

    def load(self, value: str | None, now: float) -> ConsentState | None:
        """Verify and decode; ``None`` for anything that is not a valid, fresh cookie."""
        if not value or len(value) > 4096:
            return None
        cache = self._cache
        try:
            state = cache[value]
        except KeyError:
            state = self._verify(value)
            with self._lock:
                cache[value] = state
                if len(cache) > self._cache_size:
                    cache.popitem(last=False)
        if state is None or now - state.timestamp > self._max_age or state.timestamp > now + 300:
            return None
        return state

    def _verify(self, value: str) -> ConsentState | None:
        try:
            payload, signed_at = self._serializer.loads(value, return_timestamp=True)
        except (BadData, ValueError, TypeError, UnicodeError):
            return None
        state = ConsentState.from_payload(payload)
        if state is None:
            return None
        return dataclasses.replace(state, timestamp=int(signed_at.timestamp()))
