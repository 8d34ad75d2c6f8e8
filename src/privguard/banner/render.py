"""BannerRenderer: the consent banner's markup, Consent Mode defaults and static assets.

Everything that does not depend on the request is rendered once, on first use: one
pre-encoded snippet per (language, regime, needs_banner, reconsent, gpc). A request
only fills in its CSRF token and CSP nonce, so the bytes of a snippet depend on
exactly those seven values and carry no per-visitor id -- a shop may cache them.

Every text is HTML-escaped where it is interpolated, shop overrides (``texts``) and
``policy_url`` included; JSON inside ``<script>`` has ``<``, ``>`` and ``&`` escaped.
"""

from __future__ import annotations

import hashlib
import html
import importlib.resources
import json
import operator
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from html.parser import HTMLParser
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from privguard.banner.languages import (
    FALLBACK_LANGUAGE,
    SHIPPED_LANGUAGES,
    builtin_for,
    load_builtin_texts,
    negotiate,
)
from privguard.core.categories import Category
from privguard.core.declarations import CookieInfo, Lifetime, describe_cookie
from privguard.core.trackers import Tracker
from privguard.errors import ConfigError

if TYPE_CHECKING:
    from privguard.core.decision import Decision
    from privguard.core.regions import Regime
    from privguard.settings import Settings

__all__ = [
    "BannerRenderer",
    "TEXT_KEYS",
    "CONSENT_MODE_TYPES",
    "SHIPPED_LANGUAGES",
    "load_builtin_texts",
    "return_path",
]


#: Non-essential categories in the order the policy's table (§4) lists them.
_SHOWN_CATEGORIES: tuple[Category, ...] = (
    Category.PERFORMANCE,
    Category.FUNCTIONALITY,
    Category.MARKETING,
)

#: Consent Mode v2 types per category (privacy-facts §8, suggested mapping).
CONSENT_MODE_TYPES: Mapping[Category, tuple[str, ...]] = MappingProxyType(
    {
        Category.NECESSARY: ("security_storage",),
        Category.FUNCTIONALITY: ("functionality_storage", "personalization_storage"),
        Category.PERFORMANCE: ("analytics_storage",),
        Category.MARKETING: ("ad_storage", "ad_user_data", "ad_personalization"),
    }
)
#: Milliseconds tags wait for the banner's ``update`` while a choice is open.
WAIT_FOR_UPDATE_MS = 500

#: Slot markers in pre-rendered markup; NUL never survives :func:`_esc`. A request
#: fills them with: its CSRF token, the CSP nonce attribute, the page's path (as an
#: attribute value, and URL-encoded for a query) and `` checked`` or nothing for
#: each category box (what is allowed now, so the settings show the truth).
_SLOT_NAMES = (
    "csrf_token",
    "nonce_attr",
    "next",
    "next_query",
    "on_functionality",
    "on_performance",
    "on_marketing",
)
_CSRF = "\x00csrf_token\x00"
_NONCE = "\x00nonce_attr\x00"
_NEXT = "\x00next\x00"
_NEXT_QUERY = "\x00next_query\x00"
_SLOT = re.compile("\x00(" + "|".join(_SLOT_NAMES) + ")\x00")
_SLOT_INDEX = {name: i for i, name in enumerate(_SLOT_NAMES)}
_CHECKED = b" checked"
_CHECKED_XML = b' checked="checked"'
_SLOT_CATEGORIES = (Category.FUNCTIONALITY, Category.PERFORMANCE, Category.MARKETING)
#: The US toggle icon (11 CCR §7015(b)), drawn inline: no image request.
_TOGGLE_ICON = (
    '<svg class="privguard-optout-link__icon" viewBox="0 0 30 14" width="30" height="14" '
    'aria-hidden="true" focusable="false">'
    '<rect x="0.5" y="0.5" width="29" height="13" rx="6.5" fill="#fff" stroke="#0066ff"/>'
    '<path d="M7 0.5h8.5l-4 13H7a6.5 6.5 0 0 1 0-13z" fill="#0066ff"/>'
    '<path d="M5 7.2l1.8 1.8 3.4-3.6" fill="none" stroke="#fff" stroke-width="1.4"/>'
    '<path d="M19.5 4.5l4 5m0-5l-4 5" fill="none" stroke="#0066ff" stroke-width="1.4"/>'
    "</svg>"
)
#: The settings form: checkboxes and "save" belong to it through their ``form``
#: attribute, so ticking a box and then clicking "Accept all" without JavaScript
#: does not post ``accept`` and ``category`` together (the endpoint refuses that).
_SETTINGS_FORM = "privguard-settings-form"
#: Hidden fields of every banner form: the CSRF token, and ``banner`` so the
#: ledger records the method as "banner".
#: ``next`` is the page the banner was rendered on, so a no-JS choice returns there.
_FORM_FIELDS = (
    f'<input type="hidden" name="csrf_token" value="{_CSRF}">'
    '<input type="hidden" name="banner" value="1">'
    f'<input type="hidden" name="next" value="{_NEXT}">'
)
_NEGOTIATION_CACHE_SIZE = 256
#: Banners with the page's path and ticked boxes filled in, kept for the next view of
#: the same page: at most this many bytes of markup and paths together.
_FILLED_MAX_BYTES = 2 * 1024 * 1024
#: What of an ``Accept-Language`` value is read: characters, and entries.
_ACCEPT_LANGUAGE_MAX = 128
_ACCEPT_LANGUAGE_ENTRIES = 8
_ASSET_TYPES = {"js": "text/javascript; charset=utf-8", "css": "text/css; charset=utf-8"}


#: Every text key a shop may override in ``texts`` (those of the English catalog).
_ENGLISH: Mapping[str, str] = MappingProxyType(load_builtin_texts(FALLBACK_LANGUAGE))
TEXT_KEYS: frozenset[str] = frozenset(_ENGLISH)


def _esc(text: str) -> str:
    """HTML-escape ``text``; NUL is dropped, so no text can forge a slot marker."""
    return html.escape(text.replace("\x00", ""), quote=True)


def _json_for_script(value: object) -> str:
    """JSON safe inside ``<script>``: ``<``, ``>`` and ``&`` as ``\\u`` escapes."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _code(tracker: Tracker) -> str:
    """A tracker for the guard: its category's initial, upper case for a Google tag."""
    letter = tracker.category.value[0]
    return letter.upper() if tracker.google else letter


def _js_glob(pattern: str) -> str:
    """An fnmatch glob as an anchored JavaScript regular expression source."""
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        i += 1
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[" and "]" in pattern[i + 1 :]:
            end = pattern.index("]", i + 1)
            body = pattern[i:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c) if c not in "-" else c)
    out.append("$")
    return "".join(out)


def _attr_value(value: str) -> bytes:
    return html.escape(value, quote=True).encode("utf-8")


def _nonce_attr(nonce: str | None) -> bytes:
    return b' nonce="' + _attr_value(nonce) + b'"' if nonce else b""


class _Snippet:
    """Markup rendered once, with slots (see ``_SLOT_NAMES``) filled per request."""

    __slots__ = ("_parts",)

    def __init__(self, text: str) -> None:
        pieces = _SLOT.split(text)  # static, slot name, static, slot name, ...
        self._parts: tuple[bytes | int, ...] = tuple(
            piece.encode("utf-8") if i % 2 == 0 else _SLOT_INDEX[piece]
            for i, piece in enumerate(pieces)
            if i % 2 == 1 or piece
        )

    def render(self, csrf_token: bytes, nonce_attr: bytes, *rest: bytes) -> bytes:
        """The bytes with the slots filled (values already escaped; missing ones empty)."""
        values = (csrf_token, nonce_attr, *rest) + (b"",) * (len(_SLOT_NAMES) - 2 - len(rest))
        return b"".join([p if isinstance(p, bytes) else values[p] for p in self._parts])

    def fill(self, *rest: bytes) -> _Filled:
        """The snippet with every slot but the CSRF token and the nonce filled."""
        values: tuple[bytes | int, ...] = (0, 1, *rest)
        values += (b"",) * (len(_SLOT_NAMES) - len(values))
        parts: list[bytes | int] = []
        for p in self._parts:
            value = p if isinstance(p, bytes) else values[p]
            if isinstance(value, bytes) and parts and isinstance(parts[-1], bytes):
                parts[-1] = parts[-1] + value
            elif not isinstance(value, bytes) or value:
                parts.append(value)
        return _Filled(tuple(parts))


class _Filled:
    """A snippet whose only slots left are the CSRF token (0) and the nonce (1)."""

    __slots__ = ("parts", "size", "_static", "_pick")

    def __init__(self, parts: tuple[bytes | int, ...]) -> None:
        self.parts = parts
        self.size = sum(len(p) for p in parts if isinstance(p, bytes))
        # rendered by one C-level pick from (token, nonce, *static parts), then a join
        static: list[bytes] = []
        order: list[int] = []
        for p in parts:
            if isinstance(p, bytes):
                order.append(2 + len(static))
                static.append(p)
            else:
                order.append(p)
        self._static = tuple(static)
        self._pick = operator.itemgetter(*order) if len(order) > 1 else None

    def render(self, csrf_token: bytes, nonce_attr: bytes) -> bytes:
        values = (csrf_token, nonce_attr, *self._static)
        if self._pick is None:  # one part or none
            return b"".join(values[p if isinstance(p, int) else 2] for p in self.parts)
        return b"".join(self._pick(values))


#: slots that stand where attributes go (the others are inside attribute values)
_TAG_SLOTS = re.compile("\x00(nonce_attr|on_functionality|on_performance|on_marketing)\x00")


def _to_xhtml(text: str) -> str:
    """A pre-rendered snippet as XML; its slot markers survive where they stood."""
    return xhtml(_TAG_SLOTS.sub(lambda m: " " + m.group(0), text))


_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


class _Xhtml(HTMLParser):
    """Re-serialises privguard's own HTML as well-formed XML (for XHTML pages)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.out: list[str] = []
        self._raw: str | None = None  # inside <script>/<style>

    def _attrs(self, attrs: list[tuple[str, str | None]]) -> str:
        out = []
        for n, v in attrs:
            if n.startswith("\x00"):  # a slot marker: filled with attributes per request
                out.append(f" {n}")
            else:
                out.append(f' {n}="{html.escape(n if v is None else v, quote=True)}"')
        return "".join(out)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(f"<{tag}{self._attrs(attrs)}{' /' if tag in _VOID else ''}>")
        if tag in ("script", "style"):
            self._raw = tag

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.out.append(f"<{tag}{self._attrs(attrs)} />")

    def handle_endtag(self, tag: str) -> None:
        if tag not in _VOID:
            self.out.append(f"</{tag}>")
        self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw is not None and data:
            if "]]>" in data:  # pragma: no cover - our scripts never hold it
                raise ValueError("']]>' inside a script")
            comment = "/*" if self._raw == "style" else "//"
            end = "*/" if self._raw == "style" else ""
            self.out.append(f"{comment}<![CDATA[{end}\n{data}\n{comment}]]>{end}")
        else:
            self.out.append(data)

    def handle_entityref(self, name: str) -> None:
        self.out.append(
            f"&{name};"
            if name in ("amp", "lt", "gt", "quot", "apos")
            else html.unescape(f"&{name};")
        )

    def handle_charref(self, name: str) -> None:
        self.out.append(f"&#{name};")

    def handle_comment(self, data: str) -> None:
        self.out.append(f"<!--{data.replace('--', '- -')}-->")


def xhtml(markup: str) -> str:
    """``markup`` (privguard's own) as well-formed XML: void elements closed, every
    attribute with a quoted value, script and style content in CDATA sections."""
    parser = _Xhtml()
    parser.feed(markup)
    parser.close()
    return "".join(parser.out)


#: What a path and a query keep as they are (RFC 3986 pchar; a query also "%" and "?").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "%?"
_PLAIN_PATH = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~-]*\Z")
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9/:@!$&'()*+,;=._~%?-]*\Z")
_UNRESERVED = re.compile(r"[A-Za-z0-9._~-]*\Z")


def return_path(path: str, query: str = "") -> str:
    """The request ``path`` (and ``query``) as a same-origin URL to come back to.

    A WSGI ``PATH_INFO`` holds the URL's bytes as latin-1 characters, an ASGI
    ``path`` holds them decoded as UTF-8; both come out as the same encoded path.
    Anything that is not a plain absolute path is ``/``; a query is kept when the
    result stays under 2 KiB.
    """
    if not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    if _PLAIN_PATH.match(path):  # the common case: nothing to encode
        encoded = path
    else:
        try:
            path = path.encode("latin-1").decode("utf-8")  # WSGI: bytes as latin-1
        except (UnicodeEncodeError, UnicodeDecodeError):
            pass  # already text (ASGI)
        encoded = quote(path, safe=_PATH_SAFE)
    if len(encoded) > 2048:
        return "/"
    if query:
        plain = _PLAIN_QUERY.match(query)
        with_query = encoded + "?" + (query if plain else quote(query, safe=_QUERY_SAFE))
        if len(with_query) <= 2048:
            return with_query
    return encoded


def _query_value(url: str) -> str:
    """``url`` percent-encoded as one query value (``quote(url, safe="")``), fast."""
    if _UNRESERVED.match(url.replace("/", "")):
        return url.replace("/", "%2F")
    return quote(url, safe="")


def _content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:10]


def _check_policy_url(url: str | None) -> str | None:
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("", "http", "https") or any(c in url for c in "\r\n\t"):
        raise ConfigError("policy_url", f"{url!r} must be an http(s) URL or a relative path")
    return url


def _build_catalogs(
    languages: Iterable[str], overrides: Mapping[str, Mapping[str, str]]
) -> dict[str, Mapping[str, str]]:
    languages = tuple(languages)
    for lang, table in overrides.items():
        if lang not in languages:
            raise ConfigError(
                "texts", f"texts for {lang!r}, which is not in languages {list(languages)}"
            )
        unknown = sorted(set(table) - TEXT_KEYS)
        if unknown:
            raise ConfigError(
                "texts", f"{lang!r}: unknown text key {unknown[0]!r}; valid: {sorted(TEXT_KEYS)}"
            )
    catalogs: dict[str, Mapping[str, str]] = {}
    for lang in languages:
        shipped = builtin_for(lang)
        base: dict[str, str] = {}
        if shipped is not None:
            # a key newer than a shipped translation reads in English until translated
            base = {**_ENGLISH, **load_builtin_texts(shipped)}
        if not base and lang not in overrides:
            raise ConfigError(
                "languages",
                f"{lang!r} has no built-in translation (built in: "
                f"{', '.join(SHIPPED_LANGUAGES)}); remove it from languages or give "
                f"every text key in texts[{lang!r}]",
            )
        texts = {**base, **overrides.get(lang, {})}
        missing = sorted(TEXT_KEYS - set(texts))
        if missing:
            raise ConfigError(
                "texts",
                f"language {lang!r} has no built-in translation; give every text key in "
                f"texts[{lang!r}] (missing: {', '.join(missing)})",
            )
        catalogs[lang] = MappingProxyType(texts)
    return catalogs


class BannerRenderer:
    """Renders privguard's HTML (banner, age pages) and serves its static assets.

    Build one per :class:`~privguard.Settings`, at start-up; bad ``texts`` or
    ``policy_url`` raise :class:`~privguard.ConfigError`. Thread-safe.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.prefix = settings.endpoint_prefix
        self.languages: tuple[str, ...] = tuple(settings.languages)
        self.policy_url = _check_policy_url(settings.policy_url)
        self.texts: Mapping[str, Mapping[str, str]] = MappingProxyType(
            _build_catalogs(self.languages, settings.texts)
        )
        self.assets, self.js_url, self.css_url = self._build_assets()
        self._tables: dict[str, dict[Category, str]] = {}
        # rendered on first use: 27 languages x regimes x 8 would cost 50 ms and 3 MB at
        # start-up; bounded by construction (only these settings' regimes are kept)
        self._body: dict[tuple[str, str, bool, bool, bool], _Snippet] = {}
        self._body_lock = threading.Lock()
        self._regimes = settings.regions.regimes
        self._body_xhtml: dict[tuple[str, str, bool, bool, bool], _Snippet] = {}
        #: (template key, xhtml, return path, ticked boxes) -> the banner less its token
        self._filled: dict[tuple[object, ...], _Filled] = {}
        self._filled_bytes = 0
        self._head: dict[tuple[frozenset[Category], bool, bool], _Snippet] = {}
        self._head_lock = threading.Lock()
        self._negotiated: dict[str, str] = {}
        self._negotiate_lock = threading.Lock()
        self._placeholders: dict[tuple[str, Tracker, bool], bytes] = {}
        self._guard: dict[tuple[frozenset[Category], bool], _Snippet] = {}
        self._heads: dict[tuple[frozenset[Category], bool, bool], bytes] = {}
        self._guard_js, self._guard_config = self._build_guard()

    # --- assets -------------------------------------------------------------------

    def _build_assets(self) -> tuple[Mapping[str, tuple[str, bytes]], str, str]:
        static = importlib.resources.files("privguard.banner").joinpath("static")
        assets: dict[str, tuple[str, bytes]] = {}
        urls: dict[str, str] = {}
        for ext, content_type in _ASSET_TYPES.items():
            data = static.joinpath(f"banner.{ext}").read_bytes()
            hashed = f"banner.{_content_hash(data)}.{ext}"
            assets[hashed] = (content_type, data)
            assets[f"banner.{ext}"] = (content_type, data)
            urls[ext] = f"{self.prefix}/{hashed}"
        return MappingProxyType(assets), urls["js"], urls["css"]

    @staticmethod
    def is_immutable_asset(name: str) -> bool:
        """Does ``name`` carry a content hash (cache for a year, immutable)?"""
        return name.count(".") == 2

    # --- language -----------------------------------------------------------------

    def negotiate(self, accept_language: str | None) -> str:
        """The best of ``settings.languages`` for an ``Accept-Language`` value.

        Falls back to the first configured language (no header, ``*``, garbage).
        Only the first :data:`_ACCEPT_LANGUAGE_MAX` characters and
        :data:`_ACCEPT_LANGUAGE_ENTRIES` entries are read (whole entries): a
        browser sends a few dozen characters, and an 8 KB value would otherwise
        cost milliseconds to parse on every request.
        """
        fallback = self.languages[0]
        if not accept_language:
            return fallback
        if len(accept_language) > _ACCEPT_LANGUAGE_MAX or (
            accept_language.count(",") >= _ACCEPT_LANGUAGE_ENTRIES
        ):
            parts = accept_language[: _ACCEPT_LANGUAGE_MAX + 1].split(",", _ACCEPT_LANGUAGE_ENTRIES)
            if len(parts) > _ACCEPT_LANGUAGE_ENTRIES:
                del parts[_ACCEPT_LANGUAGE_ENTRIES:]  # entries past the cap
            elif len(accept_language) > _ACCEPT_LANGUAGE_MAX and len(parts) > 1:
                parts.pop()  # the last one was cut short
            accept_language = ",".join(parts)[:_ACCEPT_LANGUAGE_MAX]
        found = self._negotiated.get(accept_language)  # one dict read: safe without the lock
        if found is not None:
            return found
        found = self._negotiate(accept_language)
        with self._negotiate_lock:
            if len(self._negotiated) >= _NEGOTIATION_CACHE_SIZE:
                self._negotiated.clear()  # bounded; a miss costs one parse
            self._negotiated[accept_language] = found
        return found

    def _negotiate(self, accept_language: str) -> str:
        return negotiate(accept_language, self.languages)

    def _lang(self, lang: str) -> str:
        return lang if lang in self.texts else self.languages[0]

    # --- banner -------------------------------------------------------------------

    def body_snippet(
        self,
        lang: str,
        decision: Decision,
        csrf_token: str | bytes,
        nonce: str | None,
        path: str = "/",
        query: str = "",
        xhtml: bool = False,
    ) -> bytes:
        """The banner markup, config and script tags, to insert before ``</body>``.

        ``csrf_token``: text (escaped here), or bytes already safe in an attribute value
        (privguard's own tokens, :meth:`~privguard.runtime.Runtime.csrf_token_bytes`).

        When ``decision.needs_banner`` is False the same markup carries ``hidden`` on
        the root, so "Privacy settings" can reopen it and gated scripts still run.
        ``path`` is the page's request path: the no-JS forms return there. Each
        category box is ticked exactly when the category is allowed now (so in an
        opt-out regime the default-on ones show as on, and a reopened view shows the
        stored choice).
        """
        if lang not in self.texts:  # _lang, inlined (once per page)
            lang = self.languages[0]
        key = (lang, decision.regime.name, decision.needs_banner, decision.reconsent, decision.gpc)
        allowed = decision.allowed
        ticked = (
            Category.FUNCTIONALITY in allowed,
            Category.PERFORMANCE in allowed,
            Category.MARKETING in allowed,
        )
        filled_key = (key, xhtml, path, query, ticked)
        filled = self._filled.get(filled_key)
        if filled is None:
            filled = self._fill_body(filled_key, decision)
        token = csrf_token if isinstance(csrf_token, bytes) else _attr_value(csrf_token)
        return filled.render(token, _nonce_attr(nonce) if nonce else b"")

    def _fill_body(
        self,
        filled_key: tuple[tuple[str, str, bool, bool, bool], bool, str, str, tuple[bool, ...]],
        decision: Decision,
    ) -> _Filled:
        """The banner for ``(template key, xhtml, path, query, ticked boxes)``, less its
        token and nonce (kept for the next view of the page while the cache has room)."""
        key, xhtml, path, query, ticked = filled_key
        cache = self._body_xhtml if xhtml else self._body
        template = cache.get(key)
        known = self._regimes.get(decision.regime.name) == decision.regime
        if template is None:
            lang = key[0]
            text = self._render_body(
                lang, decision.regime, decision.needs_banner, decision.reconsent, decision.gpc
            )
            template = _Snippet(_to_xhtml(text) if xhtml else text)
            # a Regime not from these settings is rendered on the fly, never kept
            if known:
                with self._body_lock:
                    template = cache.setdefault(key, template)
        back = return_path(path, query)
        checked = _CHECKED_XML if xhtml else _CHECKED
        filled = template.fill(
            _attr_value(back),
            _attr_value(_query_value(back)),
            *(checked if on else b"" for on in ticked),
        )
        if known and len(path) + len(query) <= 4096:
            size = filled.size + len(path) + len(query)
            with self._body_lock:  # bounded by bytes: a full cache starts afresh
                if self._filled_bytes + size > _FILLED_MAX_BYTES:
                    self._filled.clear()
                    self._filled_bytes = 0
                if filled_key not in self._filled:
                    self._filled[filled_key] = filled
                    self._filled_bytes += size
        return filled

    def _render_body(
        self, lang: str, regime: Regime, needs_banner: bool, reconsent: bool, gpc: bool
    ) -> str:
        t = {k: _esc(v) for k, v in self.texts[lang].items()}
        prefix = _esc(self.prefix)
        optout = bool(regime.default_on)
        title = t["title_optout"] if optout else t["title"]
        intro = t["intro_optout"] if optout else t["intro"]
        policy = ""
        if self.policy_url is not None:
            policy = f' <a href="{_esc(self.policy_url)}">{t["policy_link"]}</a>'
        notices = []
        if reconsent:
            notices.append(
                f'<p class="privguard__notice" data-privguard-notice="reconsent" '
                f'role="status">{t["reconsent"]}</p>'
            )
        if gpc:
            notices.append(
                f'<p class="privguard__notice" data-privguard-notice="gpc" role="status">'
                f"<strong>{t['gpc_title']}</strong> {t['gpc_text']}</p>"
            )
        tables = self._cookie_tables(lang)
        categories = [
            '<div class="privguard__category">'
            '<input type="checkbox" id="privguard-cat-necessary" checked disabled '
            'aria-describedby="privguard-cat-necessary-desc">'
            f'<label for="privguard-cat-necessary"><span class="privguard__category-name">'
            f'{t["cat_necessary"]}</span><span class="privguard__always">{t["always_on"]}'
            "</span></label>"
            f'<p class="privguard__description" id="privguard-cat-necessary-desc">'
            f"{t['cat_necessary_desc']}</p>{tables.get(Category.NECESSARY, '')}</div>"
        ]
        for cat in _SHOWN_CATEGORIES:
            name = cat.value
            categories.append(
                '<div class="privguard__category">'
                f'<input type="checkbox" name="category" value="{name}" '
                f'form="{_SETTINGS_FORM}" id="privguard-cat-{name}" '
                f'aria-describedby="privguard-cat-{name}-desc"\x00on_{name}\x00>'
                f'<label for="privguard-cat-{name}"><span class="privguard__category-name">'
                f"{t['cat_' + name]}</span></label>"
                f'<p class="privguard__description" id="privguard-cat-{name}-desc">'
                f"{t['cat_' + name + '_desc']}</p>{tables.get(cat, '')}</div>"
            )
        optout_link = ""
        if regime.optout_link:
            # DESIGN §12: visible on every page of the regime, dialog open or not
            icon = _TOGGLE_ICON if self.settings.us_optout_link == "privacy-choices" else ""
            label = t["privacy_choices"] if icon else t["do_not_sell"]
            optout_link = (
                f'<a href="{prefix}/do-not-sell?next={_NEXT_QUERY}" id="privguard-do-not-sell" '
                'class="privguard-optout-link" data-privguard-action="do-not-sell" '
                f'lang="{_esc(lang)}">{icon}<span>{label}</span></a>'
            )
        config = _json_for_script(
            {
                "prefix": self.prefix,
                "consentMode": self.settings.consent_mode,
                "regime": regime.name,
                "lang": lang,
            }
        )
        hidden = "" if needs_banner else " hidden"
        # an honoured GPC signal stays visible even when no dialog is needed
        gpc_status = ""
        if gpc:
            gpc_status = (
                '<span class="privguard-reopen__status" data-privguard-notice="gpc-honored">'
                f"{t['gpc_title']}</span>"
            )
        regime_attr = _esc(regime.name)
        lang_attr = _esc(lang)
        return (
            "<!-- privguard consent banner -->"
            f'<link rel="stylesheet" href="{_esc(self.css_url)}"{_NONCE}>'
            # not modal: the page behind stays usable (no cookie wall) and reachable
            # by keyboard and screen reader alike, so aria-modal says "false"
            f'<div id="privguard-banner" class="privguard" role="dialog" aria-modal="false" '
            f'aria-labelledby="privguard-banner-title" aria-describedby="privguard-banner-text" '
            f'lang="{lang_attr}" data-privguard-regime="{regime_attr}"'
            f"{' data-privguard-optout-link' if optout_link else ''}{hidden}>"
            '<div class="privguard__panel" tabindex="-1">'
            # shown only on a reopened dialog (CSS): closing it changes nothing
            '<a href="#" class="privguard__close" data-privguard-action="close">'
            f'<span aria-hidden="true">\u00d7</span><span class="privguard__close-label">'
            f"{t['close']}</span></a>"
            f'<h2 id="privguard-banner-title" class="privguard__title">{title}</h2>'
            f"{''.join(notices)}"
            f'<p id="privguard-banner-text" class="privguard__text">{intro}{policy}</p>'
            f'<form method="post" action="{prefix}/consent" class="privguard__form" '
            'data-privguard-form="consent">'
            f"{_FORM_FIELDS}"
            '<div class="privguard__actions">'
            '<button type="submit" name="accept" value="all" class="privguard__button" '
            f'data-privguard-action="accept-all">{t["accept_all"]}</button>'
            '<button type="submit" name="accept" value="none" class="privguard__button" '
            f'data-privguard-action="reject-all">{t["reject_all"]}</button>'
            "</div>"
            '<details class="privguard__details">'
            '<summary class="privguard__summary" data-privguard-action="settings">'
            f"{t['settings']}</summary>"
            '<fieldset class="privguard__categories">'
            f'<legend class="privguard__legend">{t["categories_legend"]}</legend>'
            f"{''.join(categories)}"
            "</fieldset>"
            '<div class="privguard__actions">'
            '<button type="submit" name="category" value="necessary" '
            f'form="{_SETTINGS_FORM}" class="privguard__button privguard__button--secondary" '
            f'data-privguard-action="save">{t["save"]}</button>'
            "</div></details></form>"
            f'<form method="post" action="{prefix}/consent" id="{_SETTINGS_FORM}" '
            'data-privguard-form="settings">'
            f"{_FORM_FIELDS}</form>"
            "</div></div>"
            f'<a href="#privguard-banner" id="privguard-reopen" class="privguard-reopen" '
            f'data-privguard-action="open" lang="{lang_attr}">{t["privacy_settings"]}'
            f"{gpc_status}</a>"
            f"{optout_link}"
            f'<script type="application/json" id="privguard-config">{config}</script>'
            f'<script src="{_esc(self.js_url)}" defer{_NONCE}></script>'
        )

    # --- auto-blocking ------------------------------------------------------------

    def guard_snippet(
        self, decision: Decision, nonce: str | None, xhtml: bool = False
    ) -> bytes | None:
        """The in-page guard (first in ``<head>``), or None with ``block_scripts=False``."""
        if not self.settings.block_scripts:
            return None
        key = (decision.allowed, xhtml)
        template = self._guard.get(key)
        if template is None:
            allowed = sorted(c.value for c in decision.allowed)
            js = self._guard_js.replace(
                "__PRIVGUARD_GUARD__",
                self._guard_config.replace('"a":[]', f'"a":{_json_for_script(allowed)}', 1),
            )
            if xhtml:
                js = f"//<![CDATA[\n{js}\n//]]>"
            template = _Snippet(f"<script{_NONCE}>{js}</script>")
            with self._head_lock:  # at most 16 x 2 entries: bounded by construction
                self._guard.setdefault(key, template)
        return template.render(b"", _nonce_attr(nonce))

    def head_snippets(
        self, decision: Decision, nonce: str | None, xhtml: bool = False
    ) -> bytes | None:
        """The guard then the Consent Mode defaults, as one snippet (None when neither).

        Without a nonce the bytes depend on the decision's shape alone and are kept (at
        most 16 x 2 x 2 entries: bounded by construction).
        """
        key = (decision.allowed, decision.needs_banner, xhtml)
        if nonce is None:
            found = self._heads.get(key)
            if found is not None:
                return found or None
        parts = [
            s
            for s in (
                self.guard_snippet(decision, nonce, xhtml),
                self.head_snippet(decision, nonce, xhtml),
            )
            if s
        ]
        joined = b"".join(parts)
        if nonce is None:
            with self._head_lock:
                self._heads.setdefault(key, joined)
        return joined or None

    def _build_guard(self) -> tuple[str, str]:
        """The guard's code (comments and indentation stripped) and its static config."""
        static = importlib.resources.files("privguard.banner").joinpath("static")
        source = static.joinpath("guard.js").read_text("utf-8")
        source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
        code = "".join(line.strip() for line in source.splitlines())
        settings = self.settings
        catalog = settings.catalog
        cookie_globs = [[_js_glob(p), c.value[0]] for p, c in catalog.globs]
        trackers = settings.trackers
        config = {
            "a": [],
            "g": settings.consent_mode == "advanced",
            "cu": settings.unknown_cookies,
            "ce": {n: c.value[0] for n, c in catalog.exact.items()},
            "cg": cookie_globs,
            "te": {h: _code(t) for h, t in trackers.exact.items()},
            "ts": {h: _code(t) for h, t in trackers.suffixes.items()},
            "tg": [[_js_glob(p), _code(t)] for p, t in trackers.host_globs],
            "tu": [[_js_glob(p), _code(t)] for p, t in trackers.url_globs],
        }
        text = json.dumps(config, separators=(",", ":"))
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
        return code, text

    def placeholder(self, lang: str, tracker: Tracker, xhtml: bool = False) -> bytes:
        """What stands in for a held iframe: what was held back, and a button to allow it.

        Well-formed XML either way (no void element, every attribute quoted).
        """
        key = (lang, tracker, xhtml)
        found = self._placeholders.get(key)
        if found is not None:
            return found
        t = self.texts[self._lang(lang)]
        category = tracker.category.value
        label = t.get("cat_" + category, category)
        text = _esc(t["held_content"]).replace("{name}", _esc(tracker.name))
        text = text.replace("{category}", _esc(label))
        allow = _esc(t["held_allow"]).replace("{category}", _esc(label))
        markup = (
            f'<span class="privguard-held" role="group" aria-label="{_esc(tracker.name)}" '
            f'lang="{_esc(self._lang(lang))}" data-privguard-placeholder="{category}">'
            f'<span class="privguard-held__text">{text}</span> '
            f'<button type="button" class="privguard-held__allow" '
            f'data-privguard-action="allow-category" data-privguard-allow="{category}">'
            f"{allow}</button></span>"
        ).encode()
        if len(self._placeholders) < 4096:  # languages x trackers: bounded by the settings
            self._placeholders[key] = markup
        return markup

    # --- declared cookies ---------------------------------------------------------

    def declared_cookies(self) -> list[tuple[str, Category, CookieInfo | None]]:
        """The cookies the banner lists: privguard's own, then the shop's ``cookies``."""
        settings = self.settings
        own = "privguard_consent"
        consent = describe_cookie(own, settings.cookie_details)
        if consent is not None:  # its real lifetime is the configured one
            days = max(1, settings.consent_max_age // 86400)
            consent = replace(consent, lifetime=Lifetime(days, "day"))
        out: list[tuple[str, Category, CookieInfo | None]] = [(own, Category.NECESSARY, consent)]
        for name in settings.declared_cookies:
            category = settings.catalog.classify(name)
            if category is not None and name != own:
                out.append((name, category, describe_cookie(name, settings.cookie_details)))
        return out

    def cookie_texts(self, lang: str, info: CookieInfo | None) -> tuple[str, str, str]:
        """(provider, purpose, lifetime) of a declaration in ``lang``; ``—`` where unknown."""
        t = self.texts[self._lang(lang)]
        if info is None:
            return ("\u2014", "\u2014", "\u2014")
        provider = info.provider or t["cookie_this_shop"]
        purpose = info.purpose
        if isinstance(purpose, str):
            text = t.get(f"purpose_{purpose}", purpose) if purpose else "\u2014"
        else:
            primary = lang.split("-", 1)[0]
            text = (
                purpose.get(lang)
                or purpose.get(primary)
                or purpose.get("en")
                or next(iter(purpose.values()), "\u2014")
            )
        return provider, text, self.lifetime_text(lang, info.lifetime)

    def lifetime_text(self, lang: str, lifetime: Lifetime | None) -> str:
        """``lifetime`` in words of ``lang`` ("2 years", "bis der Browser geschlossen wird")."""
        t = self.texts[self._lang(lang)]
        if lifetime is None:
            return "\u2014"
        if lifetime.unit == "session":
            return t["lifetime_session"]
        if lifetime.count == 1:
            return t[f"lifetime_{lifetime.unit}"]
        return t[f"lifetime_{lifetime.unit}s"].replace("{n}", str(lifetime.count))

    def _cookie_tables(self, lang: str) -> dict[Category, str]:
        found = self._tables.get(lang)  # one entry per configured language at most
        if found is None:
            found = self._tables[lang] = self._render_cookie_tables(lang)
        return found

    def _render_cookie_tables(self, lang: str) -> dict[Category, str]:
        t = {k: _esc(v) for k, v in self.texts[lang].items()}
        rows: dict[Category, list[str]] = {}
        for name, category, info in self.declared_cookies():
            provider, purpose, lifetime = self.cookie_texts(lang, info)
            rows.setdefault(category, []).append(
                f"<tr><td><code>{_esc(name)}</code></td><td>{_esc(provider)}</td>"
                f"<td>{_esc(purpose)}</td><td>{_esc(lifetime)}</td></tr>"
            )
        tables: dict[Category, str] = {}
        for category, cells in rows.items():
            tables[category] = (
                f'<details class="privguard__cookies" data-privguard-cookies="{category.value}">'
                f"<summary>{t['cookies_legend']} ({len(cells)})</summary>"
                '<table class="privguard__cookie-table"><thead><tr>'
                f'<th scope="col">{t["cookie_name"]}</th>'
                f'<th scope="col">{t["cookie_provider"]}</th>'
                f'<th scope="col">{t["cookie_purpose"]}</th>'
                f'<th scope="col">{t["cookie_lifetime"]}</th>'
                f"</tr></thead><tbody>{''.join(cells)}</tbody></table></details>"
            )
        return tables

    # --- Consent Mode -------------------------------------------------------------

    def head_snippet(
        self, decision: Decision, nonce: str | None, xhtml: bool = False
    ) -> bytes | None:
        """Google Consent Mode v2 defaults from the server state, or None when off.

        Goes right after ``<head ...>`` so it runs before any ``gtag('config', ...)``.
        """
        if not self.settings.consent_mode:
            return None
        key = (decision.allowed, decision.needs_banner, xhtml)
        template = self._head.get(key)
        if template is None:
            text = self._render_head(decision.allowed, decision.needs_banner)
            template = _Snippet(_to_xhtml(text) if xhtml else text)
            with self._head_lock:  # at most 16 x 2 entries: bounded by construction
                self._head.setdefault(key, template)
        return template.render(b"", _nonce_attr(nonce))

    def consent_mode_state(self, allowed: frozenset[Category]) -> dict[str, str]:
        """Consent Mode v2 types -> ``granted``/``denied`` for the ``allowed`` categories."""
        state: dict[str, str] = {}
        for cat, types in CONSENT_MODE_TYPES.items():
            value = "granted" if cat is Category.NECESSARY or cat in allowed else "denied"
            for name in types:
                state[name] = value
        return state

    def _render_head(self, allowed: frozenset[Category], needs_banner: bool) -> str:
        defaults: dict[str, Any] = dict(self.consent_mode_state(allowed))
        if needs_banner:
            defaults["wait_for_update"] = WAIT_FOR_UPDATE_MS
        lines = [
            "window.dataLayer=window.dataLayer||[];",
            "window.gtag=window.gtag||function(){window.dataLayer.push(arguments);};",
            f"window.gtag('consent','default',{_json_for_script(defaults)});",
        ]
        if Category.MARKETING not in allowed:
            lines.append("window.gtag('set','ads_data_redaction',true);")
        return f"<script{_NONCE}>{''.join(lines)}</script>"

    # --- age pages ----------------------------------------------------------------

    def age_form(
        self,
        lang: str,
        decision: Decision,
        csrf_token: str,
        next_path: str | None,
        nonce: str | None,
    ) -> bytes:
        """The age check page (root ``id="privguard-age-gate"``), posting to ``{prefix}/age``."""
        from privguard.banner.age import render_age_form

        lang = self._lang(lang)
        return render_age_form(
            self.texts[lang],
            lang=lang,
            prefix=self.prefix,
            css_url=self.css_url,
            required_age=decision.required_age,
            csrf_token=csrf_token,
            next_path=next_path,
            nonce=nonce,
        ).encode("utf-8")

    def rate_limited_page(self, lang: str, next_path: str) -> bytes:
        """The 429 page of a choice over the rate limit: what happened, what to do next."""
        from privguard.banner.age import render_rate_limited_page

        lang = self._lang(lang)
        return render_rate_limited_page(
            self.texts[lang], lang=lang, css_url=self.css_url, next_path=next_path
        ).encode("utf-8")

    def minor_page(self, lang: str, decision: Decision, nonce: str | None = None) -> bytes:
        """The 403 page a minor gets on an age-gated path: what happened, where to get
        help (``contact_url``, else ``policy_url``) and the way back to the shop."""
        from privguard.banner.age import render_minor_page

        lang = self._lang(lang)
        contact = self.settings.contact_url or self.policy_url
        return render_minor_page(
            self.texts[lang],
            lang=lang,
            css_url=self.css_url,
            nonce=nonce,
            required_age=decision.required_age,
            contact_url=contact,
        ).encode("utf-8")

    def optout_page(
        self, lang: str, decision: Decision, csrf_token: str, next_path: str | None
    ) -> bytes:
        """The US opt-out page (root ``id="privguard-optout"``), posting to ``do-not-sell``."""
        from privguard.banner.optout import render_optout_page

        lang = self._lang(lang)
        choice = decision.choice
        opted_out = choice is not None and Category.MARKETING not in choice
        state = decision.state
        return render_optout_page(
            self.texts[lang],
            lang=lang,
            prefix=self.prefix,
            css_url=self.css_url,
            csrf_token=csrf_token,
            next_path=next_path,
            gpc=decision.gpc,
            receipt_id=(state.receipt_id or "") if opted_out and state is not None else None,
            policy_url=self.policy_url,
            contact_url=self.settings.contact_url,
        ).encode("utf-8")
