"""The US opt-out link and page (DESIGN §12) through Flask (webtest) and Starlette (httpx).

For a ``us-optout`` visitor every HTML page carries the "Do Not Sell or Share"
link, on the first visit, after any choice, with GPC or without; it leads to a
server-rendered page that works without JavaScript, says whether GPC was
honoured, and records the opt-out in the ledger. The same pages also check the
no-JS return path and what the settings view shows.
"""

from __future__ import annotations

import html.parser
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask, make_response
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from webtest import TestApp

import privguard
from privguard.asgi import PrivacyMiddleware
from privguard.ledger import open_ledger

KEY = "us-optout-e2e-key-" + "x" * 32
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"
PAGE = "<!DOCTYPE html><html><head><title>shop</title></head><body><h1>shop</h1></body></html>"


class Page(html.parser.HTMLParser):
    """Start tags with their attributes, and the text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.tags.append(("/" + tag, {}))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    @property
    def words(self) -> str:
        return " ".join(" ".join(self.text).split())


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def page(self) -> Page:
        return Page(self.text)


class Client:
    """One browser (cookie jar) against one adapter, without JavaScript."""

    def __init__(self, kind: str, ledger: str, headers: dict[str, str], **options: Any):
        options = {
            "secret_key": KEY,
            "ledger": ledger,
            "country_header": "CF-IPCountry",
            "trusted_proxies": 1,
            "rate_limit": None,
            **options,
        }
        self.kind = kind
        self.headers = {"User-Agent": BROWSER, **headers}
        if kind == "flask":
            app = Flask(__name__)

            @app.get("/")
            @app.get("/shoes")
            def page() -> Any:
                response = make_response(PAGE)
                response.set_cookie("_ga", "GA1.1.1.1")
                return response

            privguard.protect(app, **options)
            self.runtime = app.wsgi_app.runtime  # type: ignore[attr-defined]
            self.webtest = TestApp(app, extra_environ={"REMOTE_ADDR": "127.0.0.1"})
        else:

            async def page(request: Any) -> HTMLResponse:
                response = HTMLResponse(PAGE)
                response.set_cookie("_ga", "GA1.1.1.1")
                return response

            app = Starlette(routes=[Route("/", page), Route("/shoes", page)])
            mw = PrivacyMiddleware(app, **options)
            self.runtime = mw.runtime
            self.httpx = TestClient(mw, base_url="http://localhost", follow_redirects=False)

    def get(self, path: str) -> Answer:
        if self.kind == "flask":
            r = self.webtest.get(path, headers=self.headers, expect_errors=True)
            return Answer(r.status_int, {k.lower(): v for k, v in r.headers.items()}, r.text)
        r2 = self.httpx.get(path, headers=self.headers)
        return Answer(r2.status_code, {k.lower(): v for k, v in r2.headers.items()}, r2.text)

    def post(self, path: str, fields: dict[str, str]) -> Answer:
        headers = {**self.headers, "Origin": "http://localhost"}
        if self.kind == "flask":
            r = self.webtest.post(path, fields, headers=headers, expect_errors=True)
            return Answer(r.status_int, {k.lower(): v for k, v in r.headers.items()}, r.text)
        r2 = self.httpx.post(path, data=fields, headers=headers)
        return Answer(r2.status_code, {k.lower(): v for k, v in r2.headers.items()}, r2.text)

    def submit(self, answer: Answer, **changes: str) -> Answer:
        """Post the page's form that holds a button with ``changes`` (like a browser)."""
        forms = _forms(answer.text)
        for action, fields in forms:
            if all(fields.get(k) == v for k, v in changes.items()):
                return self.post(action, fields)
        raise AssertionError(f"no form with {changes} in {forms}")

    def receipts(self) -> list[Any]:
        assert self.runtime.ledger.flush(10)
        ledger = open_ledger(self.runtime.settings.ledger)
        try:
            return list(ledger.iter_receipts())
        finally:
            ledger.close()


def _forms(text: str) -> list[tuple[str, dict[str, str]]]:
    """(action, fields) for each way a browser can submit each form: its hidden
    fields plus, per submit button inside it, that button's name and value."""
    out: list[tuple[str, dict[str, str]]] = []
    action: str | None = None
    hidden: dict[str, str] = {}
    buttons: list[dict[str, str]] = []
    for tag, attrs in Page(text).tags:
        if tag == "form":
            action, hidden, buttons = attrs.get("action") or "", {}, []
        elif tag == "/form" and action is not None:
            out.extend((action, {**hidden, **b}) for b in buttons or [{}])
            action = None
        elif action is None or attrs.get("form"):
            continue
        elif tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
            hidden[str(attrs["name"])] = attrs.get("value") or ""
        elif tag == "button":
            name = attrs.get("name")
            buttons.append({str(name): attrs.get("value") or ""} if name else {})
    return out


@pytest.fixture(params=["flask", "starlette"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def visitor(kind: str, tmp_path: Any) -> Iterator[Any]:
    clients: list[Client] = []

    def make(headers: dict[str, str] | None = None, **options: Any) -> Client:
        client = Client(
            kind, f"sqlite:///{tmp_path}/ledger-{len(clients)}.db", headers or {}, **options
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.runtime.close()


def us_links(answer: Answer) -> list[dict[str, str | None]]:
    return answer.page.find("a", data_privguard_action="do-not-sell")


US = {"CF-IPCountry": "US", "Accept-Language": "en"}


# --- the link on every page ---------------------------------------------------------------


def test_link_on_first_visit_after_a_choice_and_with_gpc(visitor: Any) -> None:
    v = visitor(US)
    first = v.get("/shoes")
    (link,) = us_links(first)
    assert link["href"] == "/privguard/do-not-sell?next=%2Fshoes"
    assert "Do Not Sell or Share My Personal Information" in first.page.words
    # the dialog is open, the link is outside it (visible whether or not it is)
    (root,) = first.page.find("div", id="privguard-banner")
    assert "hidden" not in root
    # any choice: accept all, then reject all -- the link stays
    for accept in ("all", "none"):
        answer = v.submit(v.get("/shoes"), accept=accept)
        assert answer.status == 303
        after = v.get("/shoes")
        (root,) = after.page.find("div", id="privguard-banner")
        assert "hidden" in root
        assert len(us_links(after)) == 1
    gpc = visitor({**US, "Sec-GPC": "1"})
    for _ in range(2):  # first and returning visit with GPC
        page = gpc.get("/")
        assert len(us_links(page)) == 1
        assert page.page.find("span", data_privguard_notice="gpc-honored")


@pytest.mark.parametrize(
    "country",
    [pytest.param("DE", id="gdpr"), pytest.param("BR", id="notice")],
)
def test_no_link_outside_the_us(visitor: Any, country: str) -> None:
    page = visitor({"CF-IPCountry": country}).get("/")
    assert us_links(page) == []


# --- the page, without JavaScript -----------------------------------------------------------


def test_page_records_the_opt_out_with_a_receipt(visitor: Any) -> None:
    v = visitor(US)
    shop = v.get("/shoes")
    assert "_ga" in shop.headers.get("set-cookie", "")  # performance is on until refused
    (link,) = us_links(shop)
    page = v.get(str(link["href"]))
    assert page.status == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert page.page.find("main", id="privguard-optout")
    assert page.page.find("p", data_privguard_notice="gpc-absent")
    assert v.receipts() == []  # following the link records nothing by itself
    done = v.submit(page)
    assert done.status == 303
    location = urlsplit(done.headers["location"])
    assert location.path == "/privguard/do-not-sell"
    assert parse_qs(location.query)["next"] == ["/shoes"]
    (receipt,) = v.receipts()
    assert receipt.method == "do-not-sell"
    assert receipt.regime == "us-optout" and receipt.country == "US"
    assert "marketing" in receipt.denied
    # "keep the rest": functionality and performance stay as they were (on)
    assert receipt.granted == ("functionality", "necessary", "performance")
    confirmed = v.get(done.headers["location"])
    (code,) = confirmed.page.find("code")
    assert code["data-privguard-receipt"] == receipt.id
    assert confirmed.page.find("div", data_privguard_notice="opted-out")
    (back,) = confirmed.page.find("a", data_privguard_action="back")
    assert back["href"] == "/shoes"
    assert not confirmed.page.find("form")  # nothing left to do
    # the shop now shows the stored choice, and the link is still there
    again = v.get("/shoes")
    assert len(us_links(again)) == 1
    boxes = again.page.find("input", type="checkbox", name="category")
    assert {b["value"] for b in boxes if "checked" in b} == {"functionality", "performance"}


def test_page_says_gpc_was_honoured(visitor: Any) -> None:
    v = visitor({**US, "Sec-GPC": "1"})
    page = v.get("/privguard/do-not-sell")
    assert page.status == 200
    (notice,) = page.page.find("p", data_privguard_notice="gpc-honored")
    assert "Opt-Out Request Honored" in page.page.words
    assert not page.page.find("p", data_privguard_notice="gpc-absent")
    v.submit(page)
    (receipt,) = v.receipts()
    assert receipt.gpc is True and receipt.method == "do-not-sell"


def test_page_in_the_visitors_language_and_refuses_cross_site_posts(visitor: Any) -> None:
    v = visitor({"CF-IPCountry": "US", "Accept-Language": "es-MX,es;q=0.9"})
    page = v.get("/privguard/do-not-sell?next=https://evil.example/")
    assert page.headers["content-language"] == "es"
    assert "No vender ni compartir mi información personal" in page.page.words
    (back,) = page.page.find("a", data_privguard_action="back")
    assert back["href"] == "/"  # never an open redirect
    headers = {**v.headers, "Origin": "https://evil.example"}
    if v.kind == "flask":
        r = v.webtest.post("/privguard/do-not-sell", {}, headers=headers, expect_errors=True)
        status = r.status_int
    else:
        status = v.httpx.post("/privguard/do-not-sell", data={}, headers=headers).status_code
    assert status == 403
    assert v.receipts() == []


# --- the no-JS return path and the settings' truth --------------------------------------------


@pytest.mark.parametrize("country", ["DE", "US"])
def test_no_js_choice_returns_to_the_page(visitor: Any, country: str) -> None:
    v = visitor({"CF-IPCountry": country})
    answer = v.submit(v.get("/shoes?size=42"), accept="none")
    assert answer.status == 303
    assert answer.headers["location"] == "/shoes?size=42"


def test_settings_view_shows_defaults_on_and_the_stored_choice(visitor: Any) -> None:
    us = visitor({"CF-IPCountry": "US"})
    boxes = us.get("/").page.find("input", type="checkbox", name="category")
    assert {b["value"] for b in boxes if "checked" in b} == {"functionality", "performance"}
    eu = visitor({"CF-IPCountry": "DE"})
    boxes = eu.get("/").page.find("input", type="checkbox", name="category")
    assert {b["value"] for b in boxes if "checked" in b} == set()
    eu.post(
        "/privguard/consent",
        {"category": "performance", "csrf_token": "", "next": "/"},
    )
    boxes = eu.get("/").page.find("input", type="checkbox", name="category")
    assert {b["value"] for b in boxes if "checked" in b} == {"performance"}


@pytest.mark.parametrize(
    ("language", "words"),
    [
        pytest.param("en", "Google Analytics (Google) Distinguishes visitors", id="en"),
        pytest.param("de", "Google Analytics (Google) Unterscheidet Besucher", id="de"),
    ],
)
def test_settings_view_declares_ga(visitor: Any, language: str, words: str) -> None:
    v = visitor({"CF-IPCountry": "DE", "Accept-Language": language}, cookies={"_ga": "performance"})
    page = v.get("/").page
    (table,) = page.find("details", data_privguard_cookies="performance")
    assert words in page.words
    assert ("2 years" if language == "en" else "2 Jahre") in page.words
    assert "_ga" in page.words


# --- the minors' page ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "contact"),
    [
        pytest.param(
            {"contact_url": "mailto:privacy@shop.example"},
            "mailto:privacy@shop.example",
            id="contact-url",
        ),
        pytest.param({"policy_url": "/privacy"}, "/privacy", id="falls-back-to-policy"),
    ],
)
def test_minors_page_explains_and_leads_back(
    visitor: Any, options: dict[str, str], contact: str
) -> None:
    v = visitor(
        {"CF-IPCountry": "FR", "Accept-Language": "fr", "Accept": "text/html"},
        age_gate_paths=["/shoes"],
        **options,
    )
    form = v.get("/shoes")
    assert form.status == 200 and form.headers["cache-control"] == "no-store"
    assert form.page.find("main", id="privguard-age-gate")
    assert v.post("/privguard/age", {"birth_year": "2016", "next": "/shoes"}).status == 303
    minor = v.get("/shoes")
    assert minor.status == 403
    assert minor.headers["content-language"] == "fr"
    (reason,) = minor.page.find("p", data_privguard_notice="minor-reason")
    assert "moins de 16 ans" in minor.page.words  # what happened, in the visitor's language
    (link,) = minor.page.find("a", data_privguard_action="contact")
    assert link["href"] == contact
    (back,) = minor.page.find("a", data_privguard_action="back")
    assert back["href"] == "/"
    assert "Retour à la boutique" in minor.page.words


def test_contact_url_must_be_a_link() -> None:
    with pytest.raises(privguard.ConfigError) as err:
        privguard.Settings(secret_key=KEY, contact_url="javascript:alert(1)")
    assert err.value.option == "contact_url"
