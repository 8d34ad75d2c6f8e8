"""What both example shops share: the catalogue, the order tables and the policy page.

Only the framework-specific parts (routing, sessions, templates, the one line of
privguard) live in ``flask_shop`` and ``starlette_shop``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

#: The shop's privacy policy, rendered at ``/privacy``.
POLICY_FILE = Path(__file__).resolve().parent / "policy.txt"

PRODUCTS: dict[int, dict[str, Any]] = {
    1: {"name": "Sencha Fresh", "price": 1250, "blurb": "Steamed green tea from Shizuoka."},
    2: {"name": "Assam Breakfast", "price": 990, "blurb": "Malty black tea for strong mornings."},
    3: {"name": "Rooibos Vanilla", "price": 890, "blurb": "Caffeine-free, sweet and mellow."},
    4: {"name": "Matcha Ceremony", "price": 2900, "blurb": "Stone-ground, for whisking."},
}
GREETINGS = {"en": "Welcome", "de": "Willkommen", "fr": "Bienvenue", "es": "Bienvenido"}
LANG_MAX_AGE = 365 * 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE, created REAL
);
CREATE TABLE IF NOT EXISTS orders (
    id INTEGER PRIMARY KEY, email TEXT NOT NULL, address TEXT NOT NULL,
    items TEXT NOT NULL, total INTEGER NOT NULL, created REAL
);
"""


def init_db(path: str) -> None:
    """Create the shop's tables in the SQLite file at ``path``."""
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)


def cart_lines(cart: Mapping[str, int]) -> list[dict[str, Any]]:
    """A session cart (product id -> quantity) as lines with product and subtotal (cents)."""
    lines = []
    for key, qty in cart.items():
        product = PRODUCTS.get(int(key))
        if product is not None and qty > 0:
            subtotal = qty * product["price"]
            lines.append({"id": int(key), **product, "qty": qty, "subtotal": subtotal})
    return lines


def money(cents: int) -> str:
    """``1250`` -> ``"€12.50"``."""
    return f"€{cents // 100}.{cents % 100:02d}"


def policy_html() -> Markup:
    """The shop's privacy policy (``policy.txt``) as simple, escaped HTML."""
    out: list[str] = []
    table: list[list[str]] = []
    for raw in POLICY_FILE.read_text("utf-8").splitlines():
        line = raw.strip()
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-", ":"} for c in cells):
                table.append(cells)
            continue
        if table:
            out.append(_table(table))
            table = []
        if not line:
            continue
        if line.startswith("- "):
            out.append(f"<li>{escape(line[2:])}</li>")
        elif line[0].isdigit() and len(line) < 90:
            out.append(f"<h2>{escape(line)}</h2>")
        else:
            out.append(f"<p>{escape(line)}</p>")
    if table:
        out.append(_table(table))
    return Markup("\n".join(out))


def _table(rows: list[list[str]]) -> str:
    head, *body = rows
    th = "".join(f"<th>{escape(c)}</th>" for c in head)
    trs = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in r) + "</tr>" for r in body)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"
