"""The age check form and the page a minor gets on an age-gated path.

Both are complete, localised HTML pages without scripts: the form posts to
``{prefix}/age`` with ``birth_date`` (an ``<input type="date">``), the CSRF token and
the path to return to. Only "adult"/"minor" is ever stored by the endpoint, and the
page says so. Every interpolated value is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

__all__ = [
    "render_age_form",
    "render_minor_page",
    "render_rate_limited_page",
    "safe_next_path",
    "page_html",
]


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def safe_next_path(next_path: str | None) -> str:
    """``next_path`` when it is a same-origin relative path, else ``/``."""
    if (
        not next_path
        or not next_path.startswith("/")
        or next_path.startswith("//")
        or "\\" in next_path
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in next_path)
    ):
        return "/"
    return next_path


def page_html(lang: str, title: str, css_url: str, nonce: str | None, main: str) -> str:
    """A complete page around ``main`` (already escaped markup), without scripts."""
    nonce_attr = f' nonce="{_e(nonce)}"' if nonce else ""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{_e(lang)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)}</title>"
        f'<link rel="stylesheet" href="{_e(css_url)}"{nonce_attr}>'
        f"</head><body>{main}</body></html>\n"
    )


def render_age_form(
    texts: Mapping[str, str],
    *,
    lang: str,
    prefix: str,
    css_url: str,
    required_age: int,
    csrf_token: str,
    next_path: str | None,
    nonce: str | None,
) -> str:
    """The age check page, root ``id="privguard-age-gate"``."""
    age = str(int(required_age))
    intro = _e(texts["age_intro"]).replace("{age}", age)
    main = (
        '<main id="privguard-age-gate" class="privguard-page" '
        'aria-labelledby="privguard-age-title">'
        f'<h1 id="privguard-age-title">{_e(texts["age_title"])}</h1>'
        f"<p>{intro}</p>"
        f'<form method="post" action="{_e(prefix)}/age">'
        f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
        f'<input type="hidden" name="next" value="{_e(safe_next_path(next_path))}">'
        '<label class="privguard-page__field" for="privguard-birth-date">'
        f"{_e(texts['age_birth_date'])}"
        '<input type="date" id="privguard-birth-date" name="birth_date" required '
        'autocomplete="bday" min="1890-01-01" aria-describedby="privguard-age-privacy">'
        "</label>"
        f'<p id="privguard-age-privacy" class="privguard-page__hint">'
        f"{_e(texts['age_privacy'])}</p>"
        f'<button type="submit" class="privguard__button">{_e(texts["age_submit"])}</button>'
        "</form></main>"
    )
    return page_html(lang, texts["age_page_title"], css_url, nonce, main)


def render_minor_page(
    texts: Mapping[str, str],
    *,
    lang: str,
    css_url: str,
    nonce: str | None = None,
    required_age: int = 16,
    contact_url: str | None = None,
) -> str:
    """The 403 page for a minor on an age-gated path, root ``id="privguard-minor"``."""
    reason = _e(texts["minor_reason"]).replace("{age}", str(int(required_age)))
    help_text = f"<p>{_e(texts['minor_help'])}</p>"
    if contact_url is not None:
        help_text = (
            f'<p>{_e(texts["minor_help"])} <a href="{_e(contact_url)}" '
            f'data-privguard-action="contact">{_e(texts["contact_link"])}</a></p>'
        )
    main = (
        '<main id="privguard-minor" class="privguard-page" '
        'aria-labelledby="privguard-minor-title">'
        f'<h1 id="privguard-minor-title">{_e(texts["minor_title"])}</h1>'
        f'<p data-privguard-notice="minor-reason">{reason}</p>'
        f"<p>{_e(texts['minor_text'])}</p>"
        f"{help_text}"
        f'<p><a href="/" data-privguard-action="back">{_e(texts["minor_home"])}</a></p>'
        "</main>"
    )
    return page_html(lang, texts["minor_page_title"], css_url, nonce, main)


def render_rate_limited_page(
    texts: Mapping[str, str], *, lang: str, css_url: str, next_path: str
) -> str:
    """The 429 page of a choice posted too often: nothing changed, wait, try again."""
    main = (
        '<main id="privguard-rate-limited" class="privguard-page" '
        'aria-labelledby="privguard-rate-limited-title">'
        f'<h1 id="privguard-rate-limited-title">{_e(texts["rate_limited_title"])}</h1>'
        f"<p>{_e(texts['rate_limited_text'])}</p>"
        f'<p><a href="{_e(safe_next_path(next_path))}">{_e(texts["rate_limited_back"])}</a></p>'
        "</main>"
    )
    return page_html(lang, texts["rate_limited_title"], css_url, None, main)
