"""The site audit behind ``privguard audit`` and ``privguard cookies``.

Crawl a site (a URL, or a WSGI/ASGI ``module:app`` run in-process) as a
first-time visitor from each region, record every cookie it sets, classify
each with the app's catalog and report what was set too early.
"""

from __future__ import annotations

from privguard.audit.crawl import AuditResult as AuditResult
from privguard.audit.crawl import AuditVisitor as AuditVisitor
from privguard.audit.crawl import Crawler as Crawler
from privguard.audit.crawl import Finding as Finding
from privguard.audit.crawl import parse_regions as parse_regions
from privguard.audit.target import TargetError as TargetError
from privguard.audit.target import find_settings as find_settings
from privguard.audit.target import open_target as open_target

__all__ = [
    "AuditResult",
    "AuditVisitor",
    "Crawler",
    "Finding",
    "TargetError",
    "find_settings",
    "open_target",
    "parse_regions",
]
