"""Rate limiting for privguard's POST endpoints (``rate_limit="30/minute"``).

Decides whether one more request from a key (truncated IP + consent id) is
allowed, with a *sliding window counter*: each key keeps the count of the
current fixed window and of the one before it, and a request is allowed while

    previous_count * (1 - elapsed_fraction_of_current_window) + current_count < limit

So a fresh key gets exactly ``limit`` requests at once, no aligned window ever
holds more than ``limit`` allowed requests, and a burst at the end of one
window still weighs on the start of the next (a plain fixed window would allow
``2 * limit`` across the boundary). Refused requests are not counted.

Memory is bounded: at most ``max_keys`` keys are tracked; the least recently
seen key is forgotten first. Time is passed in (``now``, seconds, e.g.
``time.monotonic()``); nothing here reads a clock. A time earlier than the key's
window counts into that window, so a clock step back never resets a limit.
"""

from __future__ import annotations

import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from privguard.errors import ConfigError

__all__ = ["Rate", "RateLimiter", "parse_rate"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SPEC = re.compile(
    r"^\s*(\d{1,9})\s*(?:/|\s+per\s+)\s*"
    r"(?:(?P<s>s|secs?|seconds?)|(?P<m>m|mins?|minutes?)|(?P<h>h|hrs?|hours?)|(?P<d>d|days?))"
    r"\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Rate:
    """``limit`` requests per ``window`` seconds."""

    limit: int
    window: float


def parse_rate(spec: str) -> Rate:
    """``"30/minute"`` → ``Rate(30, 60.0)``; also ``5/second``, ``100/hour``, ``1000/day``.

    Units may be plural or short (``s``, ``min``, ``h``, ``d``). Anything else
    raises ``ConfigError(option="rate_limit")``.
    """
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None or int(match.group(1)) < 1:
        raise ConfigError(
            "rate_limit",
            f"{spec!r} is not a rate like '30/minute', '5/second', '100/hour' or '1000/day'",
        )
    unit = next(name for name in _UNITS if match.group(name) is not None)
    return Rate(int(match.group(1)), _UNITS[unit])


@dataclass(slots=True)
class _Window:
    start: float  # start of the current fixed window
    current: int
    previous: int


class RateLimiter:
    """Sliding-window-counter limiter keyed by strings; thread-safe, bounded.

    :param spec: e.g. ``"30/minute"``; ``None`` disables limiting (every
        request is allowed and nothing is stored).
    :param max_keys: most keys remembered; beyond it the least recently seen
        key is evicted (and starts afresh if it comes back).
    """

    def __init__(self, spec: str | None, max_keys: int = 100_000) -> None:
        if isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 1:
            raise ConfigError(
                "rate_limit", f"max_keys must be a positive integer, not {max_keys!r}"
            )
        self.rate = parse_rate(spec) if spec is not None else None
        self.max_keys = max_keys
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._lock = threading.Lock()

    def allow(self, key: str, now: float) -> bool:
        """Count one request for ``key`` at time ``now`` (seconds); ``False`` when over the rate."""
        rate = self.rate
        if rate is None:
            return True
        if not math.isfinite(now):
            return False  # fail closed on a broken clock value
        window = rate.window
        aligned = math.floor(now / window) * window
        with self._lock:
            state = self._windows.get(key)
            if state is None:
                state = _Window(aligned, 0, 0)
                self._windows[key] = state
                if len(self._windows) > self.max_keys:
                    self._windows.popitem(last=False)
            else:
                self._windows.move_to_end(key)
                if aligned > state.start:
                    gap = round((aligned - state.start) / window)
                    state.previous = state.current if gap == 1 else 0
                    state.current = 0
                    state.start = aligned
            elapsed = min(max(now - state.start, 0.0), window) / window
            estimate = state.previous * (1.0 - elapsed) + state.current
            if estimate >= rate.limit:
                return False
            state.current += 1
            return True

    def __len__(self) -> int:
        """How many keys are remembered now."""
        with self._lock:
            return len(self._windows)

    def clear(self) -> None:
        """Forget every key."""
        with self._lock:
            self._windows.clear()

    def __repr__(self) -> str:
        if self.rate is None:
            return "RateLimiter(None)"
        return f"RateLimiter({self.rate.limit} per {self.rate.window:g}s, max_keys={self.max_keys})"
