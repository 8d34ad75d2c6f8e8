"""The README's code blocks, by tag: the first line of every block is ``# <tag>``.

``tests/test_readme.py`` runs the blocks that run in-process with the checkout;
``tests/test_wheel.py`` runs the rest from the built wheel in a fresh venv. A test
checks that every block is tagged and that every tag is run by one of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)

#: tags run in-process by tests/test_readme.py
IN_PROCESS = frozenset(
    {
        "quickstart: flask",
        "quickstart: fastapi",
        "quickstart: starlette",
        "example: cookies",
        "example: scripts",
        "example: context",
        "example: csp",
        "deploy: proxies",
        "geoip: check",
        "production: settings",
        "production: cron",
        "endpoint: state",
        "ledger: cli",
        "file: myshop.py",
        "file: conftest.py",
        "file: test_privacy.py",
        "qa: pytest",
        "qa: audit",
        "nodes: gunicorn.conf.py",
        "nodes: run",
    }
)
#: tags run from the installed wheel by tests/test_wheel.py
FROM_WHEEL = frozenset(
    {
        "install",
        "demo",
        "setup: secret",
        "quickstart: flask",
        "run: flask",
        "quickstart: fastapi",
        "run: fastapi",
        "django: startproject",
        "django: mysite/settings.py",
        "django: mysite/urls.py",
        "django: run",
        "file: myshop.py",
        "file: conftest.py",
        "file: test_privacy.py",
        "qa: pytest",
    }
)


@dataclass(frozen=True, slots=True)
class Block:
    """One fenced block: its language, tag (first-line comment) and code."""

    lang: str
    tag: str | None
    code: str
    line: int

    @property
    def body(self) -> str:
        """The code without the tag line."""
        return self.code.split("\n", 1)[1] if self.tag else self.code

    def commands(self) -> list[str]:
        """Shell lines without comments (trailing ``# ...`` removed)."""
        out = []
        for raw in self.body.splitlines():
            line = re.sub(r"\s+#.*$", "", raw).strip()
            if line and not line.startswith("#"):
                out.append(line)
        return out


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block of the README, in order."""
    text = README.read_text("utf-8") if text is None else text
    found = []
    for match in _FENCE.finditer(text):
        lang, code = match.group(1), match.group(2)
        first = code.split("\n", 1)[0].strip()
        tag = None
        if lang == "json":
            tag = "endpoint: state"
        elif first.startswith("# "):
            tag = first[2:].strip()
        found.append(Block(lang, tag, code, text.count("\n", 0, match.start()) + 1))
    return found


def block(tag: str) -> Block:
    """The one block tagged ``tag``."""
    matches = [b for b in blocks() if b.tag == tag]
    assert len(matches) == 1, f"README: expected one block tagged {tag!r}, found {len(matches)}"
    return matches[0]
