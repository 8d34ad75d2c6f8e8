"""The Qomoor tea shop, Starlette edition: a catalogue, a cart, sign-up and checkout.

Everything privacy-related is privguard's job, set up in ONE line
(``app.add_middleware(PrivacyMiddleware, ...)``). The shop behaves like many real
shops: it sets a server-side analytics id (``_ga``) on every page, a language cookie
(``lang``) when asked, and ships analytics and marketing tags. privguard drops those
cookies, and holds the unmodified tracker tags, until the visitor allows them.

Run: ``python -m examples.starlette_shop`` (uvicorn on http://127.0.0.1:8001).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

import privguard.starlette
from examples.shop import GREETINGS, LANG_MAX_AGE, PRODUCTS, cart_lines, init_db, money, policy_html
from privguard import Settings
from privguard.asgi import PrivacyMiddleware

HERE = Path(__file__).resolve().parent


#: privguard's options for this shop; ``PRIVGUARD_<NAME>`` environment variables win.
PRIVGUARD_DEFAULTS: dict[str, Any] = {
    "policy_url": "/privacy",
    "cookies": {
        # the banner's settings view lists these; _ga and _fbp take provider,
        # purpose and lifetime from the built-in catalog, `lang` is the shop's own
        "lang": {"category": "functionality", "purpose": "preferences", "lifetime": "1 year"},
        "_ga": "performance",
        "_fbp": "marketing",
    },
    "age_gate_paths": ["/account/register*", "/checkout*"],
    # a CDN (Cloudflare) in front tells the country; locally, curl can pretend to be it
    "country_header": "CF-IPCountry",
    "trusted_proxies": ["127.0.0.1", "::1"],
    "consent_mode": True,
}

templates = privguard.starlette.install(Jinja2Templates(directory=str(HERE / "templates")))


def privguard_settings(instance: Path, overrides: Mapping[str, Any]) -> Settings:
    """Defaults < ``PRIVGUARD_*`` environment < ``overrides`` (tests, the demo)."""
    options = {
        name: value
        for name, value in PRIVGUARD_DEFAULTS.items()
        if f"PRIVGUARD_{name.upper()}" not in os.environ
    }
    if "PRIVGUARD_LEDGER" not in os.environ:
        options["ledger"] = f"sqlite:///{instance / 'privguard-ledger.db'}"
    if "PRIVGUARD_SECRET_KEY" not in os.environ:
        options["secret_key"] = os.environ.get("SHOP_SECRET_KEY") or secrets.token_urlsafe(48)
    options.update(overrides)
    return Settings.from_env(**options)


def create_app(
    database: str | None = None,
    instance: str | Path | None = None,
    privguard: Mapping[str, Any] | None = None,
) -> Starlette:
    """Build the shop. ``privguard`` options win over defaults and the environment."""
    instance_dir = Path(instance or HERE / "instance")
    instance_dir.mkdir(parents=True, exist_ok=True)
    db_path = database or os.environ.get("SHOP_DATABASE") or str(instance_dir / "shop.db")
    init_db(db_path)
    settings = privguard_settings(instance_dir, privguard or {})
    app = Starlette(
        routes=ROUTES,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_keys[0].decode("utf-8", "replace"),
                same_site="lax",
            )
        ],
    )
    app.state.database = db_path
    app.add_middleware(PrivacyMiddleware, settings=settings)  # <- privguard: the one line
    return app


# --- storage ---------------------------------------------------------------------------


def _execute(path: str, sql: str, params: Sequence[Any]) -> Any:
    """Run one statement in its own connection (called in a thread)."""
    with sqlite3.connect(path) as db:
        db.row_factory = sqlite3.Row
        cursor = db.execute(sql, params)
        return cursor.lastrowid if sql.lstrip().upper().startswith("INSERT") else cursor.fetchone()


async def query(request: Request, sql: str, *params: Any) -> Any:
    """Run ``sql`` off the event loop; INSERT returns the row id, SELECT the first row."""
    return await run_in_threadpool(_execute, request.app.state.database, sql, params)


# --- helpers ---------------------------------------------------------------------------


def csrf_token(request: Request) -> str:
    """The shop's own form token (privguard guards only its own endpoints)."""
    if "csrf" not in request.session:
        request.session["csrf"] = secrets.token_urlsafe(16)
    return str(request.session["csrf"])


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (first value per field), CSRF-checked."""
    body = (await request.body())[:65536].decode("utf-8", "replace")
    form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
    sent = form.get("csrf", "")
    if not sent or not secrets.compare_digest(sent, request.session.get("csrf", "")):
        raise HTTPException(400, "stale form, please go back and try again")
    return form


def flash(request: Request, message: str) -> None:
    request.session.setdefault("flash", []).append(message)


def shop_context(request: Request) -> dict[str, Any]:
    """What every template sees besides ``privguard``."""
    lang = request.cookies.get("lang", "en")
    lang = lang if lang in GREETINGS else "en"
    return {
        "lang": lang,
        "greeting": GREETINGS[lang],
        "cart_count": sum(request.session.get("cart", {}).values()),
        "csrf_token": csrf_token(request),
        "messages": request.session.pop("flash", []),
        "money": money,
    }


templates.context_processors.append(shop_context)


def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    """Render a page; like many shops, tag the visitor with a server-side analytics id."""
    response = templates.TemplateResponse(request, name, context, status_code=status)
    if "_ga" not in request.cookies:
        # privguard drops this Set-Cookie unless `performance` is allowed
        client_id = f"GA1.1.{secrets.randbelow(10**9)}.{int(time.time())}"
        response.set_cookie("_ga", client_id, max_age=2 * 365 * 24 * 3600, samesite="lax")
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


# --- views -----------------------------------------------------------------------------


async def index(request: Request) -> Response:
    return page(request, "index.html", products=PRODUCTS)


async def product(request: Request) -> Response:
    product_id = request.path_params["product_id"]
    item = PRODUCTS.get(product_id)
    if item is None:
        raise HTTPException(404)
    return page(request, "product.html", product=item, product_id=product_id)


async def cart_add(request: Request) -> Response:
    form = await read_form(request)
    product_id = int(form.get("product_id", "0") or 0)
    if product_id not in PRODUCTS:
        raise HTTPException(400)
    cart = dict(request.session.get("cart", {}))
    cart[str(product_id)] = cart.get(str(product_id), 0) + 1
    request.session["cart"] = cart
    flash(request, f"{PRODUCTS[product_id]['name']} is in your cart.")
    return redirect("/cart")


async def cart(request: Request) -> Response:
    lines = cart_lines(request.session.get("cart", {}))
    return page(request, "cart.html", lines=lines, total=sum(x["subtotal"] for x in lines))


async def set_lang(request: Request) -> Response:
    code = request.path_params["code"]
    if code not in GREETINGS:
        raise HTTPException(404)
    response = redirect("/")
    # a functionality cookie: privguard lets it through only when allowed
    response.set_cookie("lang", code, max_age=LANG_MAX_AGE, samesite="lax")
    return response


async def register(request: Request) -> Response:
    error = None
    if request.method == "POST":
        form = await read_form(request)
        name = form.get("name", "").strip()
        email = form.get("email", "").strip().lower()
        if not name or "@" not in email:
            error = "Please give your name and a valid email address."
        else:
            try:
                await query(
                    request,
                    "INSERT INTO customers (name, email, created) VALUES (?, ?, ?)",
                    name,
                    email,
                    time.time(),
                )
            except sqlite3.IntegrityError:
                error = "That email address already has an account."
            else:
                request.session["email"] = email
                flash(request, f"Welcome, {name}! Your account is ready.")
                return redirect("/")
    return page(request, "register.html", error=error)


async def checkout(request: Request) -> Response:
    lines = cart_lines(request.session.get("cart", {}))
    total = sum(x["subtotal"] for x in lines)
    error = None
    if request.method == "POST":
        form = await read_form(request)
        email = form.get("email", "").strip().lower()
        address = form.get("address", "").strip()
        if not lines:
            error = "Your cart is empty."
        elif "@" not in email or not address:
            error = "Please give an email address and a shipping address."
        else:
            items = json.dumps([{"id": x["id"], "qty": x["qty"]} for x in lines])
            order_id = await query(
                request,
                "INSERT INTO orders (email, address, items, total, created) VALUES (?, ?, ?, ?, ?)",
                email,
                address,
                items,
                total,
                time.time(),
            )
            request.session.pop("cart", None)
            return redirect(f"/orders/{order_id}")
    return page(
        request,
        "checkout.html",
        lines=lines,
        total=total,
        error=error,
        email=request.session.get("email", ""),
    )


async def order(request: Request) -> Response:
    row = await query(request, "SELECT * FROM orders WHERE id = ?", request.path_params["order_id"])
    if row is None:
        raise HTTPException(404)
    return page(request, "order.html", order=dict(row))


async def privacy(request: Request) -> Response:
    return page(request, "privacy.html", policy=policy_html())


ROUTES = [
    Route("/", index, name="index"),
    Route("/product/{product_id:int}", product, name="product"),
    Route("/cart/add", cart_add, methods=["POST"], name="cart_add"),
    Route("/cart", cart, name="cart"),
    Route("/lang/{code}", set_lang, name="set_lang"),
    Route("/account/register", register, methods=["GET", "POST"], name="register"),
    Route("/checkout", checkout, methods=["GET", "POST"], name="checkout"),
    Route("/orders/{order_id:int}", order, name="order"),
    Route("/privacy", privacy, name="privacy"),
]


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the shop with uvicorn."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m examples.starlette_shop",
        description="The privguard Starlette example shop.",
    )
    parser.add_argument("--host", default=os.environ.get("SHOP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SHOP_PORT", "8001")))
    args = parser.parse_args(argv)
    # access logs keep truncated IPs only (the policy keeps log data 12 months)
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["filters"] = {"truncate_ip": {"()": "privguard.logging.TruncateIPFilter"}}
    log_config["handlers"]["access"]["filters"] = ["truncate_ip"]
    # proxy_headers=False: privguard reads X-Forwarded-For itself, as far as it trusts
    uvicorn.run(
        create_app(), host=args.host, port=args.port, proxy_headers=False, log_config=log_config
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
