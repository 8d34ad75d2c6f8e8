"""visitor_matrix(): one GET through the usual visitors, and what each was given.

The visitors (:data:`~privguard.testing.visitors.STANDARD_VISITORS`): EEA with
no choice, EEA rejected, EEA accepted, California with GPC, rest of the world
(BR), EEA minor. The app runs in-process (WSGI or ASGI, detected). What each
visitor may be given is privguard's own decision for that visitor under the
app's settings -- so a matrix on a shop whose templates or third-party code
slip cookies past the middleware (or an app served without it) shows the
leak, row by row.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from privguard.core.categories import Category
from privguard.testing.assertions import banner_state, cookies_set
from privguard.testing.visitors import STANDARD_VISITORS, Visitor, make_visitor

if TYPE_CHECKING:
    from privguard.settings import Settings
    from privguard.testing.responses import ResponseData

__all__ = ["visitor_matrix", "MatrixResult", "MatrixRow"]


@dataclass(frozen=True, slots=True)
class MatrixRow:
    """One visitor's GET: status, cookies set (name, category), banner, problems."""

    label: str
    visitor: Visitor
    status: int
    cookies: tuple[tuple[str, str], ...]
    banner_shown: bool | None  # None: not an HTML page
    banner_expected: bool
    allowed: frozenset[str]
    problems: tuple[str, ...] = ()
    response: ResponseData | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """No problem in this row."""
        return not self.problems


@dataclass(frozen=True, slots=True)
class MatrixResult:
    """Every row of a :func:`visitor_matrix` run."""

    path: str
    rows: tuple[MatrixRow, ...]

    def table(self) -> str:
        """The rows as an aligned text table."""
        headers = ["visitor", "status", "cookies set", "banner", "verdict"]
        body = []
        for row in self.rows:
            cookies = ", ".join(f"{n} ({c})" for n, c in row.cookies) or "-"
            banner = {True: "shown", False: "hidden", None: "n/a"}[row.banner_shown]
            verdict = "ok" if row.ok else "; ".join(row.problems)
            body.append([row.label, str(row.status), cookies, banner, verdict])
        widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
        lines = [
            "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
            for r in [headers, [*("-" * w for w in widths)], *body]
        ]
        return f"GET {self.path}\n" + "\n".join(lines) + "\n"

    def assert_clean(self) -> None:
        """Raise :class:`AssertionError` listing every problem, with the table."""
        problems = [f"{row.visitor.describe()}: {p}" for row in self.rows for p in row.problems]
        if problems:
            raise AssertionError(
                "privacy problems in the visitor matrix:\n  "
                + "\n  ".join(problems)
                + "\n\n"
                + self.table()
            )

    def __str__(self) -> str:
        return self.table()


def _expected(visitor: Visitor, path: str, settings: Settings) -> Any:
    """privguard's own decision for ``visitor`` (what the app may give them)."""
    from privguard.core.consent import ConsentCodec
    from privguard.core.decision import Lookups, decide
    from privguard.core.request import RequestView

    headers = {n.lower(): v for n, v in visitor.all_headers.items()}
    view = RequestView("GET", path, "http", "localhost", visitor.peer, headers)
    codec = ConsentCodec(settings.secret_keys, settings.consent_max_age)
    return decide(view, settings, Lookups(codec=codec), time.time())


def visitor_matrix(
    app: Any, path: str = "/", settings: Settings | None = None, timeout: float = 10
) -> MatrixResult:
    """GET ``path`` from ``app`` (WSGI or ASGI, in-process) as each standard visitor.

    ``settings`` default to those of the privguard middleware found inside
    ``app``. Problems per row: a cookie of a category not allowed for that
    visitor, an undeclared cookie, and a banner shown or missing against
    what the visitor needs (HTML pages only).
    """
    from privguard.audit.target import find_settings
    from privguard.audit.transport import ASGITransport, WSGITransport, is_asgi

    if settings is None:
        settings = find_settings(app)
        if settings is None:
            raise TypeError(
                "visitor_matrix: no privguard middleware found inside the app; pass settings="
            )
    transport = ASGITransport(app) if is_asgi(app) else WSGITransport(app)
    rows = []
    try:
        for label, options in STANDARD_VISITORS.items():
            visitor = make_visitor(**options, settings=settings)
            response = transport.request(
                "GET", path, list(visitor.all_headers.items()), timeout=timeout
            )
            decision = _expected(visitor, path, settings)
            allowed = decision.allowed
            cookies = []
            problems = []
            for cookie in cookies_set(response):
                category = settings.catalog.classify(cookie.name)
                name = "undeclared" if category is None else category.value
                cookies.append((cookie.name, name))
                if category is None:
                    problems.append(f"{cookie.name} (undeclared) set")
                elif category not in allowed:
                    problems.append(f"{cookie.name} ({name}) set but not allowed")
            shown = banner_state(response)
            expected = bool(decision.needs_banner) and not decision.is_bot
            if shown is not None and shown != expected:
                problems.append("banner shown without need" if shown else "banner missing")
            rows.append(
                MatrixRow(
                    label=label,
                    visitor=visitor,
                    status=response.status,
                    cookies=tuple(cookies),
                    banner_shown=shown,
                    banner_expected=expected,
                    allowed=frozenset(c.value for c in allowed if c is not Category.NECESSARY),
                    problems=tuple(problems),
                    response=response,
                )
            )
    finally:
        transport.close()
    return MatrixResult(path, tuple(rows))
