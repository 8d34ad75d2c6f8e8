"""The Qomoor tea shop, Flask edition: a catalogue, a cart, sign-up and checkout.

Everything privacy-related is privguard's job, set up in ONE line (``PrivGuard(app)``)
from the ``PRIVGUARD_*`` config keys below. The shop itself behaves like many real
shops do: it sets a server-side analytics id (``_ga``) on every page, a language
cookie (``lang``) when asked, and ships analytics and marketing tags. privguard
drops those cookies, and holds the unmodified tracker tags, until the visitor allows them.

Run: ``python -m examples.flask_shop``. The wheel ships this shop (and ``examples/shop.py``)
as ``privguard._examples`` for ``privguard demo``, so its imports are relative.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sqlite3
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from flask import Flask, abort, flash, g, redirect, render_template, request, session, url_for

from privguard.flask import PrivGuard
from privguard.logging import werkzeug_request_handler

from ..shop import GREETINGS, LANG_MAX_AGE, PRODUCTS, cart_lines, init_db, money, policy_html

HERE = Path(__file__).resolve().parent


# privguard's options, as Flask config keys (any of them may also come from the
# environment: PRIVGUARD_COUNTRY_HEADER=..., see README.md).
PRIVGUARD_DEFAULTS: dict[str, Any] = {
    "PRIVGUARD_POLICY_URL": "/privacy",
    "PRIVGUARD_COOKIES": {
        # the banner's settings view lists these; _ga and _fbp take provider,
        # purpose and lifetime from the built-in catalog, `lang` is the shop's own
        "lang": {"category": "functionality", "purpose": "preferences", "lifetime": "1 year"},
        "_ga": "performance",
        "_fbp": "marketing",
    },
    "PRIVGUARD_AGE_GATE_PATHS": ["/account/register*", "/checkout*"],
    # a CDN (Cloudflare) in front tells the country; locally, curl can pretend to be it
    "PRIVGUARD_COUNTRY_HEADER": "CF-IPCountry",
    "PRIVGUARD_TRUSTED_PROXIES": ["127.0.0.1", "::1"],
    "PRIVGUARD_CONSENT_MODE": True,
}


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the shop; ``config`` (e.g. from tests) wins over defaults and environment."""
    app = Flask(__name__, root_path=str(HERE), instance_path=str(HERE / "instance"))
    app.config.update(PRIVGUARD_DEFAULTS)
    app.config.from_prefixed_env("SHOP")  # SHOP_SECRET_KEY, SHOP_DATABASE
    # PRIVGUARD_GEOIP_DB=..., PRIVGUARD_TRUSTED_PROXIES=1, ...: privguard parses the strings
    app.config.update({k: v for k, v in os.environ.items() if k.startswith("PRIVGUARD_")})
    app.config.update(config or {})
    if not app.config.get("SECRET_KEY"):
        # a fresh key per start: consent (and carts) are forgotten on restart
        app.config["SECRET_KEY"] = secrets.token_urlsafe(48)
    app.config.setdefault("DATABASE", str(Path(app.instance_path) / "shop.db"))
    app.config.setdefault(
        "PRIVGUARD_LEDGER", f"sqlite:///{Path(app.instance_path) / 'privguard-ledger.db'}"
    )
    Path(app.config["DATABASE"]).parent.mkdir(parents=True, exist_ok=True)
    init_db(app.config["DATABASE"])
    _routes(app)
    PrivGuard(app)  # <- privguard: the one line
    return app


# --- storage ---------------------------------------------------------------------------


def db() -> sqlite3.Connection:
    """The request's database connection."""
    if "db" not in g:
        from flask import current_app

        g.db = sqlite3.connect(current_app.config["DATABASE"])
        g.db.row_factory = sqlite3.Row
    return g.db


def csrf_token() -> str:
    """The shop's own form token (privguard guards only its own endpoints)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(16)
    return str(session["csrf"])


def _check_csrf() -> None:
    sent = request.form.get("csrf", "")
    if not sent or not secrets.compare_digest(sent, session.get("csrf", "")):
        abort(400, "stale form, please go back and try again")


# --- views -----------------------------------------------------------------------------


def _routes(app: Flask) -> None:
    app.jinja_env.globals.update(money=money, csrf_token=csrf_token)
    app.teardown_appcontext(_close_db)

    @app.context_processor
    def shop_context() -> dict[str, Any]:
        lang = request.cookies.get("lang", "en")
        lang = lang if lang in GREETINGS else "en"
        count = sum(session.get("cart", {}).values())
        return {"lang": lang, "greeting": GREETINGS[lang], "cart_count": count}

    @app.after_request
    def server_side_analytics_id(response: Any) -> Any:
        # Server-side tagging: a client id on every page. privguard drops this
        # Set-Cookie unless `performance` is allowed for the visitor.
        if response.mimetype == "text/html" and "_ga" not in request.cookies:
            client_id = f"GA1.1.{secrets.randbelow(10**9)}.{int(time.time())}"
            response.set_cookie("_ga", client_id, max_age=2 * 365 * 24 * 3600, samesite="Lax")
        return response

    @app.get("/")
    def index() -> str:
        return render_template("index.html", products=PRODUCTS)

    @app.get("/product/<int:product_id>")
    def product(product_id: int) -> str:
        item = PRODUCTS.get(product_id) or abort(404)
        return render_template("product.html", product=item, product_id=product_id)

    @app.post("/cart/add")
    def cart_add() -> Any:
        _check_csrf()
        product_id = request.form.get("product_id", type=int)
        if product_id not in PRODUCTS:
            abort(400)
        cart = dict(session.get("cart", {}))
        cart[str(product_id)] = cart.get(str(product_id), 0) + 1
        session["cart"] = cart
        flash(f"{PRODUCTS[product_id]['name']} is in your cart.")
        return redirect(url_for("cart"))

    @app.get("/cart")
    def cart() -> str:
        lines = cart_lines(session.get("cart", {}))
        return render_template("cart.html", lines=lines, total=sum(x["subtotal"] for x in lines))

    @app.get("/lang/<code>")
    def set_lang(code: str) -> Any:
        if code not in GREETINGS:
            abort(404)
        response = redirect(url_for("index"))
        # a functionality cookie: privguard lets it through only when allowed
        response.set_cookie("lang", code, max_age=LANG_MAX_AGE, samesite="Lax")
        return response

    @app.route("/account/register", methods=["GET", "POST"])
    def register() -> Any:
        error = None
        if request.method == "POST":
            _check_csrf()
            name = request.form.get("name", "").strip()
            email = request.form.get("email", "").strip().lower()
            if not name or "@" not in email:
                error = "Please give your name and a valid email address."
            else:
                try:
                    with db():
                        db().execute(
                            "INSERT INTO customers (name, email, created) VALUES (?, ?, ?)",
                            (name, email, time.time()),
                        )
                except sqlite3.IntegrityError:
                    error = "That email address already has an account."
                else:
                    session["email"] = email
                    flash(f"Welcome, {name}! Your account is ready.")
                    return redirect(url_for("index"))
        return render_template("register.html", error=error)

    @app.route("/checkout", methods=["GET", "POST"])
    def checkout() -> Any:
        lines = cart_lines(session.get("cart", {}))
        total = sum(x["subtotal"] for x in lines)
        error = None
        if request.method == "POST":
            _check_csrf()
            email = request.form.get("email", "").strip().lower()
            address = request.form.get("address", "").strip()
            if not lines:
                error = "Your cart is empty."
            elif "@" not in email or not address:
                error = "Please give an email address and a shipping address."
            else:
                items = json.dumps([{"id": x["id"], "qty": x["qty"]} for x in lines])
                with db():
                    cursor = db().execute(
                        "INSERT INTO orders (email, address, items, total, created) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (email, address, items, total, time.time()),
                    )
                session.pop("cart", None)
                return redirect(url_for("order", order_id=cursor.lastrowid))
        return render_template(
            "checkout.html", lines=lines, total=total, error=error, email=session.get("email", "")
        )

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> str:
        row = db().execute("SELECT * FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            abort(404)
        return render_template("order.html", order=row)

    @app.get("/privacy")
    def privacy() -> str:
        return render_template("privacy.html", policy=policy_html())


def _close_db(exc: BaseException | None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the shop with Flask's development server."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.flask_shop", description="The privguard Flask example shop."
    )
    parser.add_argument("--host", default=os.environ.get("SHOP_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SHOP_PORT", "5000")))
    args = parser.parse_args(argv)
    # the development server's access log keeps truncated IPs only
    create_app().run(host=args.host, port=args.port, request_handler=werkzeug_request_handler())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
