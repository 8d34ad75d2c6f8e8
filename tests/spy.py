"""Count what privguard calls inside, without changing what it does."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def spy(
    monkeypatch: pytest.MonkeyPatch,
    owner: object,
    name: str,
    keep: Callable[..., Any] | None = None,
) -> list[Any]:
    """Record each call of ``owner.name`` (a module's function or a class's method),
    still calling it: the list gets ``keep(*args)``, or the arguments themselves."""
    calls: list[Any] = []
    real = getattr(owner, name)

    def recording(*args: Any, **kwargs: Any) -> Any:
        calls.append(keep(*args) if keep is not None else args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)
    return calls
