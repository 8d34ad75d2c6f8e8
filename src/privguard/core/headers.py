"""Region-aware response headers: Permissions-Policy, Referrer-Policy, Vary, Cache-Control.

Everything works on a list of ``(name, value)`` string pairs so that order and
duplicates survive. The app's own values win where a header is added "when
absent"; Vary and Permissions-Policy are merged.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "TOPICS_DENIED",
    "merge_permissions_policy",
    "merge_vary",
    "make_private",
    "DEFAULT_REFERRER_POLICY",
]

DEFAULT_REFERRER_POLICY = "strict-origin-when-cross-origin"
#: Features switched off while marketing is not allowed.
TOPICS_DENIED = (("browsing-topics", "()"), ("interest-cohort", "()"))


_TOPICS_ONLY = ", ".join(f"{n}={v}" for n, v in TOPICS_DENIED)


def merge_permissions_policy(existing: str | None) -> str:
    """The app's Permissions-Policy with the ad-targeting features denied."""
    if not existing:
        return _TOPICS_ONLY
    items: list[tuple[str, str]] = []
    if existing:
        for part in existing.split(","):
            name, sep, value = part.strip().partition("=")
            if name and sep:
                items.append((name.strip(), value.strip()))
    denied = dict(TOPICS_DENIED)
    items = [(n, denied.get(n.lower(), v)) for n, v in items]
    present = {n.lower() for n, _ in items}
    items.extend((n, v) for n, v in TOPICS_DENIED if n not in present)
    return ", ".join(f"{n}={v}" for n, v in items)


def merge_vary(existing: Iterable[str], names: Iterable[str]) -> str | None:
    """One ``Vary`` value holding the existing entries and ``names`` (no duplicates)."""
    out: list[str] = []
    seen: set[str] = set()
    for value in existing:
        for item in value.split(","):
            item = item.strip()
            if item and item.lower() not in seen:
                seen.add(item.lower())
                out.append(item)
    if "*" in seen:
        return "*"
    for name in names:
        if name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return ", ".join(out) if out else None


def make_private(existing: str | None) -> str:
    """Cache-Control that keeps the app's directives but forbids shared caches."""
    if not existing:
        return "private"
    kept = []
    for part in existing.split(","):
        directive = part.strip()
        key = directive.split("=", 1)[0].strip().lower()
        if key in ("public", "s-maxage"):
            continue
        if directive:
            kept.append(directive)
    lowered = {d.split("=", 1)[0].strip().lower() for d in kept}
    if "private" not in lowered and "no-store" not in lowered:
        kept.insert(0, "private")
    return ", ".join(kept)
