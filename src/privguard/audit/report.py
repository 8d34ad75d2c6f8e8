"""Audit output: a readable table, JSON, JUnit XML, and the cookie inventory.

The table and Markdown are for people; ``--json`` and ``--junit`` for
machines (CI dashboards show one JUnit test case per region and page, its
failure naming the cookies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from xml.etree import ElementTree as ET

from privguard.audit.crawl import AuditResult, CookieRecord

__all__ = [
    "render_table",
    "audit_json",
    "write_junit",
    "inventory",
    "inventory_markdown",
    "inventory_json",
]


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    rows = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()
    out = [line, "  ".join("-" * w for w in widths)]
    for row in rows:
        out.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip())
    return out


def render_table(result: AuditResult) -> str:
    """The audit as text: one block per region, one row per cookie, then the verdict."""
    lines = [f"privguard audit of {result.target} (categories: {result.catalog} catalog)"]
    for region in result.regions:
        v = region.visitor
        lines.append("")
        pages = len(region.pages)
        lines.append(
            f"{v.label}: regime {region.regime}, first-time visitor"
            f"{', GPC' if v.gpc else ''}, {pages} page{'s' if pages != 1 else ''} crawled"
        )
        problems = {id(f.cookie): f.kind for f in region.findings}
        rows = [
            [c.name, c.category, c.source, c.page, problems.get(id(c), "ok")]
            for c in region.cookies
        ]
        if rows:
            lines.extend(
                "  " + x for x in _table(["cookie", "category", "set by", "page", "verdict"], rows)
            )
        else:
            lines.append("  no cookies set")
        problems.update({id(f.request): f.kind for f in region.findings if f.request})
        requests = [
            [r.host, r.tracker, r.category, r.page, problems.get(id(r), "ok")]
            for p in region.pages
            for r in p.requests
        ]
        if requests:
            lines.extend(
                "  " + x
                for x in _table(
                    ["tracker host", "tracker", "category", "page", "verdict"], requests
                )
            )
        others = sorted({h for p in region.pages for h in p.third_party})
        if others:
            lines.append("  other hosts called (not in the tracker catalog): " + ", ".join(others))
        for page in region.pages:
            if page.error:
                lines.append(f"  ! {page.path}: {page.error}")
        for warning in region.warnings:
            lines.append(f"  warning: {warning}")
        if region.blocked:
            lines.append("  blocked by privguard as undeclared: " + ", ".join(region.blocked))
    findings = [f.message for f in result.findings] + result.problems
    blocked = sorted({n for r in result.regions for n in r.blocked})
    lines.append("")
    if findings:
        lines.append(f"FAIL: {len(findings)} finding{'s' if len(findings) != 1 else ''}")
        lines.extend(f"  - {f}" for f in findings)
    elif blocked:
        lines.append("OK: no cookie was set before consent, GPC honoured")
    else:
        lines.append("OK: no cookie was set before consent, none undeclared, GPC honoured")
    if blocked:
        lines.append(
            f"Note: the app set undeclared cookies that privguard blocked: {', '.join(blocked)}"
            ' -- declare each in the `cookies` option (e.g. cookies={"name": "functionality"})'
            " or the feature that needs it breaks for visitors"
        )
    return "\n".join(lines) + "\n"


def audit_json(result: AuditResult) -> dict[str, Any]:
    """The audit as a JSON-able dict."""
    return {
        "target": result.target,
        "catalog": result.catalog,
        "clean": result.clean,
        "findings": [f.as_dict() for f in result.findings],
        "region_findings": result.problems,
        "blocked_undeclared": sorted({n for r in result.regions for n in r.blocked}),
        "regions": [
            {
                "region": r.visitor.region,
                "label": r.visitor.label,
                "gpc": r.visitor.gpc,
                "regime": r.regime,
                "warnings": r.warnings,
                "problems": r.problems,
                "blocked_undeclared": r.blocked,
                "pages": [
                    {
                        "path": p.path,
                        "depth": p.depth,
                        "status": p.status,
                        "content_type": p.content_type,
                        "error": p.error,
                        "cookies": [c.as_dict() for c in p.cookies],
                        "tracker_requests": [r.as_dict() for r in p.requests],
                        "third_party_hosts": p.third_party,
                        "findings": [f.as_dict() for f in p.findings],
                    }
                    for p in r.pages
                ],
            }
            for r in result.regions
        ],
    }


def write_junit(result: AuditResult, path: str) -> None:
    """JUnit XML: a test suite per region, a test case per page; failures name the cookies."""
    suites = ET.Element("testsuites", name="privguard audit")
    total = failures = errors = 0
    for region in result.regions:
        suite = ET.SubElement(suites, "testsuite", name=f"privguard audit {region.visitor.label}")
        s_fail = s_err = 0
        for page in region.pages:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"privguard.audit.{region.visitor.label}",
                name=page.path,
            )
            if page.error:
                s_err += 1
                ET.SubElement(case, "error", message=page.error).text = page.error
            elif page.findings:
                s_fail += 1
                text = "\n".join(f.message for f in page.findings)
                names = ", ".join(sorted({f.name for f in page.findings}))
                label = (
                    "cookies"
                    if all(f.request is None for f in page.findings)
                    else "cookies/trackers"
                )
                ET.SubElement(
                    case, "failure", message=f"{label}: {names}", type="privacy"
                ).text = text
        for problem in region.problems:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"privguard.audit.{region.visitor.label}",
                name="region",
            )
            s_fail += 1
            ET.SubElement(
                case, "failure", message="region not simulated", type="privacy"
            ).text = problem
        suite.set("tests", str(len(region.pages) + len(region.problems)))
        suite.set("failures", str(s_fail))
        suite.set("errors", str(s_err))
        total += len(region.pages) + len(region.problems)
        failures += s_fail
        errors += s_err
    suites.set("tests", str(total))
    suites.set("failures", str(failures))
    suites.set("errors", str(errors))
    ET.indent(suites)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def inventory(records: Iterable[CookieRecord]) -> list[CookieRecord]:
    """One record per cookie (name, domain, path), first seen first."""
    out: dict[tuple[str, str, str], CookieRecord] = {}
    for record in records:
        out.setdefault((record.name, record.domain, record.path), record)
    return list(out.values())


def _md(text: str) -> str:
    return text.replace("|", "\\|")


#: The declared facts of one cookie: (provider, purpose, declared lifetime), in English.
Describe = Callable[[str], "tuple[str, str, str] | None"]


def _declared(describe: Describe | None, name: str) -> tuple[str, str, str]:
    found = describe(name) if describe is not None else None
    return found if found is not None else ("-", "-", "-")


def inventory_markdown(
    records: Sequence[CookieRecord],
    target: str,
    blocked: Sequence[str] = (),
    describe: Describe | None = None,
) -> str:
    """The inventory as a Markdown table; ``blocked``: undeclared cookies privguard dropped.

    ``describe(name)`` gives the catalog's declaration (provider, purpose, lifetime),
    the same facts the banner's settings view shows.
    """
    lines = [f"# Cookies set by {target}", ""]
    tail = []
    if blocked:
        tail = [
            "",
            "Blocked by privguard as undeclared (declare them in the `cookies` option): "
            + ", ".join(f"`{n}`" for n in blocked),
        ]
    if not records:
        return "\n".join([*lines, "No cookies were set.", *tail, ""])
    lines.append(
        "| cookie | category | provider | purpose | declared lifetime | lifetime seen "
        "| domain | path | flags | set by | first seen on |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in records:
        provider, purpose, declared = _declared(describe, r.name)
        cells = [
            f"`{r.name}`",
            r.category,
            provider,
            purpose,
            declared,
            r.lifetime,
            r.domain,
            r.path,
            ", ".join(r.flags) or "-",
            r.source,
            r.page,
        ]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    undeclared = [r.name for r in records if r.category == "undeclared"]
    if undeclared:
        lines += ["", f"Undeclared (add them to the `cookies` option): {', '.join(undeclared)}"]
    return "\n".join([*lines, *tail]) + "\n"


def inventory_json(
    records: Sequence[CookieRecord],
    target: str,
    blocked: Sequence[str] = (),
    describe: Describe | None = None,
) -> dict[str, Any]:
    """The inventory as a JSON-able dict; each cookie with its ``declared`` facts (or null)."""
    cookies = []
    for r in records:
        entry = {k: v for k, v in r.as_dict().items() if k != "region"}
        found = describe(r.name) if describe is not None else None
        entry["declared"] = (
            None
            if found is None
            else {"provider": found[0], "purpose": found[1], "lifetime": found[2]}
        )
        cookies.append(entry)
    return {"target": target, "blocked_undeclared": list(blocked), "cookies": cookies}
