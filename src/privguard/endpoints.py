"""privguard's own endpoints: consent, age, gpc.json and the banner assets.

Each handler takes the request view, the decision already made for it and
the body, and returns an :class:`EndpointResponse`; adapters only translate.
Bad input is a 4xx with ``{"error": ...}``, never a 500 and never consent.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import replace
from urllib.parse import parse_qsl, quote, urlsplit

from werkzeug.http import dump_cookie

from privguard.core.age import AgeAnswerError, judge_age, parse_birth
from privguard.core.categories import NON_ESSENTIAL, Category, parse_category
from privguard.core.consent import ConsentState
from privguard.core.decision import Decision
from privguard.core.request import RequestView
from privguard.errors import RequestDataError
from privguard.responses import JSON_TYPE, NO_STORE, EndpointResponse, json_error, json_response
from privguard.runtime import GPC_PATH, Runtime

__all__ = [
    "EndpointResponse",
    "json_error",
    "handle_endpoint",
    "state_json",
    "signal_withdrawal",
    "MAX_BODY",
    "GPC_LAST_UPDATE",
]

log = logging.getLogger("privguard.endpoints")

MAX_BODY = 16 * 1024
#: Date the gpc.json support statement last changed (RFC 3339 full-date).
GPC_LAST_UPDATE = "2026-11-25"
_JSON = JSON_TYPE
_NO_STORE = NO_STORE


def state_json(decision: Decision, settings_version: str) -> dict[str, object]:
    """The ``GET /privguard/consent`` shape (exactly the DESIGN keys)."""
    return {
        "country": decision.country,
        "subdivision": decision.subdivision,
        "regime": decision.regime.name,
        "choice_made": decision.choice is not None,
        "policy_version": settings_version,
        "categories": {c.value: c in decision.allowed for c in Category},
        "signals": {"gpc": decision.gpc, "dnt": decision.dnt},
        "age_status": decision.age_status,
        "required_age": decision.required_age,
        "needs_banner": decision.needs_banner,
    }


def handle_endpoint(
    runtime: Runtime, view: RequestView, decision: Decision, body: bytes | None
) -> EndpointResponse | None:
    """Answer a request to one of privguard's paths; ``None`` if the path is not ours.

    ``body`` is ``None`` when it was larger than :data:`MAX_BODY`.
    """
    path = view.path
    if path == GPC_PATH:
        if view.method not in ("GET", "HEAD"):
            return json_error(405, "method not allowed")
        data = {"gpc": runtime.settings.honor_gpc, "lastUpdate": GPC_LAST_UPDATE}
        resp = json_response(200, data)
        return replace(
            resp,
            headers=[
                ("Content-Type", _JSON),
                ("Cache-Control", "public, max-age=86400"),
                ("Content-Length", str(len(resp.body))),
            ],
        )
    name = path[len(runtime.prefix_slash) :]
    try:
        if name == "consent":
            if view.method in ("GET", "HEAD"):
                return json_response(200, state_json(decision, runtime.settings.policy_version))
            if view.method == "POST":
                return _post_consent(runtime, view, decision, body)
            return json_error(405, "method not allowed")
        if name == "age":
            if view.method == "POST":
                return _post_age(runtime, view, decision, body)
            return json_error(405, "method not allowed")
        if name == "do-not-sell":
            if view.method in ("GET", "HEAD"):
                return _optout_page(runtime, view, decision)
            if view.method == "POST":
                return _post_do_not_sell(runtime, view, decision, body)
            return json_error(405, "method not allowed")
        asset = runtime.banner.assets.get(name)
        if asset is not None and view.method in ("GET", "HEAD"):
            content_type, payload = asset
            hashed = name.count(".") >= 2
            cache = "public, max-age=31536000, immutable" if hashed else "public, max-age=3600"
            return EndpointResponse(
                200,
                [
                    ("Content-Type", content_type),
                    ("Cache-Control", cache),
                    ("Content-Length", str(len(payload))),
                    ("X-Content-Type-Options", "nosniff"),
                ],
                payload,
            )
    except RequestDataError as exc:
        return json_error(exc.status, exc.message)
    except _Refused as refused:
        return _refused(runtime, view, refused)
    return None


# --- shared request checks ------------------------------------------------------------


_DEFAULT_PORTS = {"http": "80", "https": "443"}


def _origin_key(scheme: str, netloc: str) -> tuple[str, str]:
    """(scheme, host[:port]) with the scheme's default port dropped, lower case."""
    netloc = netloc.strip().lower()
    host, sep, port = netloc.rpartition(":")
    if sep and port.isdigit() and "]" not in port and port == _DEFAULT_PORTS.get(scheme):
        netloc = host
    return scheme.lower(), netloc


def _same_origin(view: RequestView) -> bool | None:
    """True/False from Origin (else Referer); ``None`` when neither is present."""
    expected = _origin_key(view.scheme, view.host)
    for name in ("origin", "referer"):
        value = view.header(name)
        if value is None:
            continue
        value = value.strip()
        if value == "null" or not value:
            return False
        try:
            parts = urlsplit(value)
        except ValueError:
            return False
        return _origin_key(parts.scheme, parts.netloc) == expected
    return None


def _parse_body(view: RequestView, body: bytes | None) -> tuple[dict[str, list[object]], bool]:
    """Form or JSON body -> (field -> list of values, is_json)."""
    if body is None:
        raise RequestDataError(f"request body larger than {MAX_BODY} bytes", 413)
    ctype = (view.header("content-type") or "").split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestDataError("request body is not UTF-8") from None
    if ctype == _JSON or ctype.endswith("+json"):
        try:
            data = json.loads(text) if text.strip() else None
        except (ValueError, RecursionError):  # deeply nested JSON must be a 400, not a 500
            raise RequestDataError("request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise RequestDataError("expected a JSON object")
        fields: dict[str, list[object]] = {}
        for key, value in data.items():
            if key == "categories":
                if not isinstance(value, list):
                    raise RequestDataError("'categories' must be a list of category names")
                fields[key] = value
            else:
                fields[key] = [value]
        return fields, True
    if ctype in ("application/x-www-form-urlencoded", ""):
        try:
            pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=64)
        except ValueError:
            raise RequestDataError("malformed form body") from None
        form: dict[str, list[object]] = {}
        for key, value in pairs:
            form.setdefault(key, []).append(value)
        return form, False
    raise RequestDataError("send application/x-www-form-urlencoded or application/json", 415)


def _check_origin(
    runtime: Runtime, view: RequestView, fields: dict[str, list[object]]
) -> str | None:
    """Refuse a cross-origin post (403); return the post's page-view token, if any."""
    token = view.header("x-privguard-csrf")
    if token is None:
        values = fields.get("csrf_token") or [None]
        token = values[0] if isinstance(values[0], str) else None
    same = _same_origin(view)
    if same is True:
        return token
    # Fetch metadata: a browser that says the request is cross-site is refused even
    # with a token (the token is host-bound, so a foreign page can read one).
    site = (view.header("sec-fetch-site") or "").strip().lower()
    fetch_ok = site in ("", "same-origin", "none")
    if same is None and fetch_ok and runtime.check_csrf(token, view.host):
        return token
    raise RequestDataError("cross-origin request refused (same-origin or a CSRF token needed)", 403)


#: A page view this young whose token has not posted yet counts only against the flood
#: ceiling: a visitor's first choice on a page they just loaded is not refused.
FRESH_VIEW = 3600.0
#: Network (/24, /48) ceilings, as multiples of ``rate_limit``: posts without a fresh
#: page-view token, and all posts of fresh page views (a flood of page loads).
NETWORK_FACTOR = 10
FLOOD_FACTOR = 100


def allow_choice(
    runtime: Runtime,
    decision: Decision,
    view_token: tuple[str, float] | None = None,
    *,
    visitor: str | None = None,
) -> bool:
    """Count one choice; ``False`` when it is over the rate limit.

    The visitor is the page view's token when the post carries a valid one
    (every banner and age form does), else ``visitor`` (a stable id the caller
    knows), else a keyed hash of the full address, held only by the limit's
    storage for the window. The visitor gets ``rate_limit``. Its network (the
    truncated address) gets ten times that; posts from page views younger than
    an hour count instead against a ceiling of a hundred times, so visitors
    behind one NAT are not refused by each other, while a flood of page loads
    is still bounded. A refused post is not counted on the network.
    """
    limiter, rate = runtime.rate_limiter, runtime.choice_rate
    if limiter is None or rate is None:
        return True
    network = runtime.key_hash("net|" + (decision.analytics_ip or "unknown"))
    if view_token is not None:
        key, age = "view|" + view_token[0], view_token[1]
    elif visitor is not None:
        key, age = "id|" + runtime.key_hash(visitor), FRESH_VIEW + 1
    else:
        key, age = "ip|" + runtime.key_hash(decision.client_ip or "unknown"), FRESH_VIEW + 1
    ceiling, net_key = (
        (rate.times(FLOOD_FACTOR), "flood|" + network)
        if age <= FRESH_VIEW
        else (rate.times(NETWORK_FACTOR), "net|" + network)
    )
    if limiter.full(ceiling, net_key):  # a network over its ceiling adds no visitor keys
        return False
    if not limiter.allow(rate, key):
        return False
    return limiter.allow(ceiling, net_key)


class _Refused(Exception):
    """A choice over the rate limit (answered by :func:`_refused`)."""

    def __init__(self, is_json: bool, fields: dict[str, list[object]]) -> None:
        super().__init__("rate limited")
        self.is_json = is_json
        self.fields = fields


RATE_LIMITED = "too many choices from this client; try again later"


def _refused(runtime: Runtime, view: RequestView, refused: _Refused) -> EndpointResponse:
    """429 with what to do next: JSON for a JSON post, a page in the visitor's language else."""
    rate = runtime.choice_rate
    retry = str(int(rate.window) if rate is not None else 60)
    banner = runtime.banner
    lang = banner.negotiate(view.header("accept-language"))
    if refused.is_json:
        data = {
            "error": RATE_LIMITED,
            "message": banner.texts[lang]["rate_limited_text"],
            "retry_after": int(retry),
        }
        resp = json_response(429, data)
        return replace(resp, headers=[*resp.headers, ("Retry-After", retry)])
    try:
        back = _safe_next(_single(refused.fields, "next"))
    except RequestDataError:
        back = "/"
    body = banner.rate_limited_page(lang, back)
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        _NO_STORE,
        ("Content-Length", str(len(body))),
        ("Content-Language", lang),
        ("Retry-After", retry),
    ]
    return EndpointResponse(429, headers, body)


def _safe_next(value: object) -> str:
    """A same-origin relative path, else ``/`` (no open redirects, no header injection)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(not 0x20 <= ord(c) < 0x7F or c == "\\" for c in value) or len(value) > 2048:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _single(fields: dict[str, list[object]], name: str) -> object:
    values = fields.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise RequestDataError(f"{name!r} given more than once")
    return values[0]


# --- consent ----------------------------------------------------------------------------


def _granted_from(fields: dict[str, list[object]]) -> frozenset[Category]:
    accept = _single(fields, "accept")
    cats = fields.get("categories") if "categories" in fields else fields.get("category")
    if accept is not None and cats:
        raise RequestDataError("send either 'accept' or 'categories', not both")
    if accept is not None:
        if accept == "all":
            return NON_ESSENTIAL | {Category.NECESSARY}
        if accept == "none":
            return frozenset({Category.NECESSARY})
        raise RequestDataError("'accept' must be 'all' or 'none'")
    if cats is None:
        raise RequestDataError("send 'accept' (all|none) or 'categories'")
    granted = {Category.NECESSARY}
    for item in cats:
        cat = parse_category(item) if isinstance(item, str) else None
        if cat is None or (isinstance(item, str) and item != item.strip().lower()):
            raise RequestDataError(f"unknown category {item!r}")
        granted.add(cat)
    return frozenset(granted)


def _accept_post(
    runtime: Runtime, view: RequestView, decision: Decision, body: bytes | None
) -> tuple[dict[str, list[object]], bool]:
    """Parse a choice post and run the checks every choice shares: origin, rate."""
    fields, is_json = _parse_body(view, body)
    token = _check_origin(runtime, view, fields)
    if not allow_choice(runtime, decision, runtime.view_token(token, view.host)):
        raise _Refused(is_json, fields)
    return fields, is_json


def _post_consent(
    runtime: Runtime, view: RequestView, decision: Decision, body: bytes | None
) -> EndpointResponse:
    fields, is_json = _accept_post(runtime, view, decision, body)
    granted = _granted_from(fields)
    method = "json" if is_json else "form"
    if not is_json and view.header("x-privguard-csrf") is None and "banner" in fields:
        method = "banner"
    if is_json and view.header("x-privguard-csrf") is not None:
        method = "banner"
    return _store(runtime, view, decision, granted, method, fields, is_json)


def _store(
    runtime: Runtime,
    view: RequestView,
    decision: Decision,
    granted: frozenset[Category] | None,
    method: str,
    fields: dict[str, list[object]],
    is_json: bool,
    age: tuple[str, int | None, str | None] | None = None,
    receipt_id: str | None = None,
    record: bool = True,
) -> EndpointResponse:
    settings = runtime.settings
    old = decision.state
    now = runtime.clock()
    if receipt_id is None:
        receipt_id = secrets.token_urlsafe(16)
    if age is None:
        age = (
            (old.age_status, old.age_threshold, old.age_country)
            if old is not None
            else ("unknown", None, None)
        )
    regime: str | None = decision.regime.name
    if granted is None:  # an age answer keeps the current choice (if any, current version)
        granted = decision.choice
        if decision.regime_reask and old is not None:  # ... and one made elsewhere, as it was
            granted, regime = old.granted, old.regime
    state = ConsentState(
        version=settings.policy_version,
        granted=granted,
        receipt_id=receipt_id,
        timestamp=int(now),
        age_status=age[0],
        age_threshold=age[1],
        age_country=age[2],
        regime=regime if granted is not None else None,
    )
    value = runtime.codec.dump(state)
    cookie = dump_cookie(
        decision.consent_cookie_name,
        value,
        max_age=settings.consent_max_age,
        path="/",
        domain=settings.cookie_domains[0] if settings.cookie_domains else None,
        secure=view.is_https,
        httponly=False,
        samesite="Lax",
    )
    # the decision as it stands with the new cookie: its ``expire`` withdraws every
    # request cookie of a now-denied category, exactly as on any other request
    new_decision = runtime.decide(_with_cookie(view, decision.consent_cookie_name, value))
    if record:
        _record(runtime, new_decision, receipt_id, now, method)
    if is_json:
        resp = json_response(200, state_json(new_decision, settings.policy_version))
        return replace(resp, cookies=(cookie,), decision=new_decision)
    target = _safe_next(_single(fields, "next"))
    return EndpointResponse(
        303,
        [("Location", target), _NO_STORE, ("Content-Length", "0")],
        b"",
        (cookie,),
        new_decision,
    )


def _with_cookie(view: RequestView, name: str, value: str) -> RequestView:
    """``view`` as the browser will send it next: ``name`` set to ``value``."""
    kept = [
        part
        for part in (view.header("cookie") or "").split(";")
        if part.strip() and part.split("=", 1)[0].strip() != name
    ]
    kept.append(f" {name}={value}")
    return replace(view, headers={**view.headers, "cookie": ";".join(kept).strip()})


def signal_withdrawal(runtime: Runtime, view: RequestView, decision: Decision) -> tuple[str, ...]:
    """Record a GPC/DNT-forced withdrawal of marketing once: new cookie + receipt.

    The rewritten consent cookie no longer grants marketing, so the withdrawal
    is recorded once, and stays in force when the signal is later absent (the
    absence of a signal is not an opt-in). The new receipt id is derived from
    the old one, so a page's parallel requests (or a replayed cookie) all get
    the same cookie and the ledger keeps one receipt; the runtime also submits
    each derived id once, and the rate limit bounds what is left.
    """
    old = decision.state
    if decision.choice is None or old is None:
        return ()
    receipt_id = derived_receipt_id(old.receipt_id or "", runtime.settings.secret_keys[0])
    first = runtime.first_withdrawal(receipt_id)
    if first and not allow_choice(runtime, decision, visitor=old.receipt_id or ""):
        return ()  # a replay loop: marketing stays denied, nothing more is recorded
    granted = decision.choice - {Category.MARKETING}
    method = "gpc" if decision.gpc else "dnt"
    response = _store(
        runtime, view, decision, granted, method, {}, True, receipt_id=receipt_id, record=first
    )
    return response.cookies


def derived_receipt_id(old_id: str, key: bytes) -> str:
    """A stable receipt id for the signal-forced withdrawal of ``old_id``."""
    digest = hmac.new(key, b"privguard.withdrawal:" + old_id.encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:16]).decode("ascii").rstrip("=")


def _record(runtime: Runtime, decision: Decision, receipt_id: str, now: float, method: str) -> None:
    writer = runtime.ledger
    if writer is None:
        return
    from privguard.ledger import ReceiptDraft

    granted = tuple(sorted(c.value for c in decision.allowed))
    denied = tuple(sorted(c.value for c in decision.denied))
    try:
        draft = ReceiptDraft(
            id=receipt_id,
            ts=dt.datetime.fromtimestamp(now, dt.UTC),
            policy_version=runtime.settings.policy_version,
            granted=granted,
            denied=denied,
            method=method,
            regime=decision.regime.name,
            country=decision.country,
            gpc=decision.gpc,
            dnt=decision.dnt,
            ip=decision.analytics_ip,
            ua_family=decision.ua_family,
            age_status=decision.age_status,
        )
    except ValueError:  # a field the ledger refuses to store; the choice is still honoured
        log.exception("privguard could not build a ledger receipt")
        return
    writer.submit(draft)


# --- US opt-out (DESIGN §12) --------------------------------------------------------------

#: Our own page loads only its same-origin stylesheet and posts only to us.
_PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'"
)


def _html(status: int, body: bytes, lang: str) -> EndpointResponse:
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        _NO_STORE,
        ("Content-Language", lang),
        ("Content-Security-Policy", _PAGE_CSP),
        ("Content-Length", str(len(body))),
    ]
    return EndpointResponse(status, headers, body)


def _optout_page(runtime: Runtime, view: RequestView, decision: Decision) -> EndpointResponse:
    """``GET {prefix}/do-not-sell``: the opt-out page; a GET never records anything.

    Link scanners and prefetchers follow links: only the visitor's own post
    writes a receipt, so every receipt in the ledger is a visitor's act.
    """
    query = dict(parse_qsl(view.query, max_num_fields=8)) if view.query else {}
    banner = runtime.banner
    lang = banner.negotiate(view.header("accept-language"))
    body = banner.optout_page(
        lang, decision, runtime.csrf_token(view.host), _safe_next(query.get("next"))
    )
    return _html(200, body, lang)


def _post_do_not_sell(
    runtime: Runtime, view: RequestView, decision: Decision, body: bytes | None
) -> EndpointResponse:
    """``POST {prefix}/do-not-sell``: deny marketing, keep the rest as it stands now.

    A form post answers 303 to the opt-out page (which then shows the receipt);
    a JSON post answers 200 with the new state.
    """
    fields, is_json = _accept_post(runtime, view, decision, body)
    granted = (decision.allowed - {Category.MARKETING}) | {Category.NECESSARY}
    response = _store(runtime, view, decision, granted, "do-not-sell", fields, is_json)
    if is_json:
        return response
    back = _safe_next(_single(fields, "next"))
    target = f"{runtime.prefix_slash}do-not-sell?next={quote(back, safe='')}"
    return replace(response, headers=[("Location", target), _NO_STORE, ("Content-Length", "0")])


# --- age -------------------------------------------------------------------------------


def _post_age(
    runtime: Runtime, view: RequestView, decision: Decision, body: bytes | None
) -> EndpointResponse:
    fields, is_json = _accept_post(runtime, view, decision, body)
    today = dt.datetime.fromtimestamp(runtime.clock(), dt.UTC).date()
    try:
        birth = parse_birth(_single(fields, "birth_date"), _single(fields, "birth_year"), today)
    except AgeAnswerError as exc:
        raise RequestDataError(str(exc)) from None
    status = judge_age(birth, decision.required_age, today)
    del birth  # never stored, never logged
    if decision.age_status == "minor":
        status = "minor"  # a minor answer sticks for the cookie's lifetime
    response = _store(
        runtime,
        view,
        decision,
        None,
        "age",
        fields,
        is_json,
        age=(status, decision.required_age, decision.country),
    )
    if status == "minor":
        runtime.on_minor(view, response.decision or decision)
    return response
