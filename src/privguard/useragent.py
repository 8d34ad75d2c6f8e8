"""User agents: browser family and bot verdict, behind the core's ``UserAgentLookup``.

``UserAgents().parse(ua) -> (family, is_bot)``, e.g. ``("Chrome", False)`` or
``("Googlebot", True)``. Parsing uses ua-parser 1.x with its Rust engine
(``ua-parser[regex]`` -> ``ua_parser_rs``; the ``user-agents`` wrapper is 25x
slower on unseen agents), and each instance keeps a bounded LRU cache of
answers.

A request counts as a bot when ua-parser's device family is ``Spider`` or the
agent matches :data:`BOT_PATTERN` (HTTP libraries and tools such as curl,
Wget, python-requests, Go-http-client, okhttp, Java, headless browsers, and
the common crawlers). An empty agent is a bot (no person's browser sends
none). Garbage never raises: at worst it is ``(None, False)``.

The compiled ua-parser matcher set is built once per process on first use
and shared, like a compiled ``re`` pattern (building it takes ~0.1 s); the
answers are cached per instance.
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Any

__all__ = ["UserAgents", "BOT_PATTERN", "MAX_LENGTH", "DEFAULT_CACHE_SIZE"]

#: Cached answers per instance.
DEFAULT_CACHE_SIZE = 10_000
#: Characters of a User-Agent that are parsed (and cached); real agents are far shorter.
MAX_LENGTH = 512

#: Agents that are bots whatever ua-parser says: tools, libraries, headless browsers, crawlers.
BOT_PATTERN = re.compile(
    r"""
    ^(?:curl|wget|java|okhttp|go-http-client|python-|libwww-perl|lwp-|httpie|
        axios|node-fetch|undici|php|ruby|guzzlehttp|apache-httpclient|postmanruntime|
        insomnia|scrapy|aiohttp|httpx|dart|reqwest|winhttp|powershell)\b
    |python-requests|python-httpx|python-urllib|aiohttp/|go-http-client|okhttp/|\bjava/|
    libwww-perl|scrapy|headlesschrome|phantomjs|puppeteer|playwright|selenium|lighthouse|
    googlebot|google-inspectiontool|googleother|adsbot-google|mediapartners-google|
    feedfetcher-google|storebot-google|bingbot|bingpreview|msnbot|duckduckbot|duckassistbot|
    baiduspider|yandex(?:bot|images|mobilebot|metrika)|applebot|facebookexternalhit|facebot|
    meta-externalagent|ahrefsbot|semrushbot|gptbot|chatgpt-user|oai-searchbot|claudebot|
    claude-web|anthropic-ai|perplexitybot|ccbot|bytespider|petalbot|mj12bot|dotbot|
    seznambot|sogou|exabot|ia_archiver|archive\.org_bot|twitterbot|linkedinbot|slackbot|
    discordbot|telegrambot|whatsapp|pinterestbot|amazonbot|uptimerobot|pingdom|
    yahoo!\ slurp|\bbot\b|bot/|crawler|spider|\+https?://
    """,
    re.IGNORECASE | re.VERBOSE,
)

_resolver: Any = None
_resolver_lock = threading.Lock()


def _shared_resolver() -> Any:
    """The compiled ua-parser matchers (Rust engine), built once per process."""
    global _resolver
    if _resolver is None:
        with _resolver_lock:
            if _resolver is None:
                from ua_parser import load_lazy_builtins
                from ua_parser.regex import Resolver

                _resolver = Resolver(load_lazy_builtins())
    return _resolver


class UserAgents:
    """Browser family and bot verdict of User-Agent strings, with a bounded LRU cache.

    Thread-safe; build one per middleware.
    """

    def __init__(self, cache_size: int = DEFAULT_CACHE_SIZE) -> None:
        from ua_parser import Domain

        self._resolver = _shared_resolver()
        self._domains = Domain.USER_AGENT | Domain.DEVICE
        self._cached = functools.lru_cache(maxsize=cache_size)(self._parse)

    def parse(self, user_agent: str) -> tuple[str | None, bool]:
        """``(browser family or None, is_bot)`` for one User-Agent header value."""
        if not isinstance(user_agent, str):
            return None, False
        return self._cached(user_agent[:MAX_LENGTH])

    def cache_clear(self) -> None:
        """Forget every cached answer."""
        self._cached.cache_clear()

    def _parse(self, user_agent: str) -> tuple[str | None, bool]:
        text = user_agent.strip()
        if not text:
            return None, True
        family: str | None = None
        spider = False
        try:
            result = self._resolver(text, self._domains)
        except Exception:  # e.g. lone surrogates the Rust engine cannot take
            result = None
        if result is not None:
            if result.user_agent is not None and result.user_agent.family != "Other":
                family = result.user_agent.family
            spider = result.device is not None and result.device.family == "Spider"
        return family, spider or BOT_PATTERN.search(text) is not None
