"""The US opt-out page ("Do Not Sell or Share My Personal Information", DESIGN §12).

A complete, localised page without scripts: it says whether a Global Privacy
Control signal was received and honoured (11 CCR §7025(c)(6) asks for that), and
offers one button that posts the opt-out to ``{prefix}/do-not-sell``. Once the
stored choice denies marketing it shows the receipt number instead. Every
interpolated value is HTML-escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from privguard.banner.age import page_html, safe_next_path

__all__ = ["render_optout_page"]


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def render_optout_page(
    texts: Mapping[str, str],
    *,
    lang: str,
    prefix: str,
    css_url: str,
    csrf_token: str,
    next_path: str | None,
    gpc: bool,
    receipt_id: str | None,
    policy_url: str | None,
    contact_url: str | None,
) -> str:
    """The opt-out page, root ``id="privguard-optout"``.

    ``receipt_id`` is the receipt of a stored choice that denies marketing (the
    visitor has opted out), else ``None``.
    """
    back = safe_next_path(next_path)
    if gpc:
        signal = (
            '<p class="privguard__notice" role="status" data-privguard-notice="gpc-honored">'
            f"<strong>{_e(texts['gpc_title'])}</strong> {_e(texts['optout_gpc_honored'])}</p>"
        )
    else:
        signal = (
            '<p class="privguard-page__hint" data-privguard-notice="gpc-absent">'
            f"{_e(texts['optout_gpc_absent'])}</p>"
        )
    if receipt_id is not None:
        action = (
            '<div class="privguard__notice" role="status" data-privguard-notice="opted-out">'
            f"<h2>{_e(texts['optout_done_title'])}</h2>"
            f"<p>{_e(texts['optout_done'])}</p>"
            f"<p>{_e(texts['optout_receipt'])} "
            f'<code data-privguard-receipt="{_e(receipt_id)}">{_e(receipt_id)}</code></p></div>'
        )
    else:
        action = (
            f'<form method="post" action="{_e(prefix)}/do-not-sell">'
            f'<input type="hidden" name="csrf_token" value="{_e(csrf_token)}">'
            f'<input type="hidden" name="next" value="{_e(back)}">'
            '<button type="submit" class="privguard__button" '
            f'data-privguard-action="confirm-do-not-sell">{_e(texts["optout_button"])}</button>'
            "</form>"
        )
    links = [f'<a href="{_e(back)}" data-privguard-action="back">{_e(texts["optout_back"])}</a>']
    if policy_url is not None:
        links.append(f'<a href="{_e(policy_url)}">{_e(texts["policy_link"])}</a>')
    if contact_url is not None and contact_url != policy_url:
        links.append(f'<a href="{_e(contact_url)}">{_e(texts["contact_link"])}</a>')
    main = (
        '<main id="privguard-optout" class="privguard-page" '
        'aria-labelledby="privguard-optout-title">'
        f'<h1 id="privguard-optout-title">{_e(texts["optout_page_title"])}</h1>'
        f"{signal}"
        f"<p>{_e(texts['optout_intro'])}</p>"
        f"{action}"
        f'<p class="privguard-page__links">{" · ".join(links)}</p>'
        "</main>"
    )
    return page_html(lang, texts["optout_page_title"], css_url, None, main)
