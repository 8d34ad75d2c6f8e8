"""privguard with FastAPI: the ``privguard_context`` dependency."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from privguard.asgi import PrivacyMiddleware
from privguard.context import PrivacyContext
from privguard.starlette import privguard_context

SECRET = "s" * 40
UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"
PEER = ("127.0.0.1", 50000)

Privacy = Annotated[PrivacyContext, Depends(privguard_context)]


def make_app(protected: bool = True) -> FastAPI:
    app = FastAPI()

    @app.get("/state")
    def state(ctx: Privacy) -> dict[str, object]:
        return {
            "country": ctx.country,
            "regime": ctx.regime,
            "gpc": ctx.gpc,
            "marketing": ctx.allows("marketing"),
            "analytics_ip": ctx.analytics_ip,
        }

    if protected:
        app.add_middleware(
            PrivacyMiddleware,
            secret_key=SECRET,
            ledger=None,
            trusted_proxies=["127.0.0.1"],
            country_header="CF-IPCountry",
        )
    return app


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        pytest.param(
            {"CF-IPCountry": "DE"},
            {"country": "DE", "regime": "gdpr", "gpc": False, "marketing": False},
            id="eea",
        ),
        pytest.param(
            {"CF-IPCountry": "US"},
            {"country": "US", "regime": "us-optout", "gpc": False, "marketing": False},
            id="us",
        ),
        pytest.param(
            {"CF-IPCountry": "BR", "Sec-GPC": "1"},
            {"country": "BR", "regime": "notice", "gpc": True, "marketing": False},
            id="gpc",
        ),
    ],
)
def test_dependency_gives_the_requests_context(
    headers: dict[str, str], expected: dict[str, object]
) -> None:
    with TestClient(make_app(), client=PEER) as client:
        body = client.get("/state", headers={"User-Agent": UA, **headers}).json()
    assert {k: body[k] for k in expected} == expected


def test_dependency_sees_the_truncated_ip() -> None:
    with TestClient(make_app(), client=PEER) as client:
        body = client.get(
            "/state", headers={"User-Agent": UA, "X-Forwarded-For": "203.0.113.77"}
        ).json()
    assert body["analytics_ip"] == "203.0.113.0"


def test_dependency_without_middleware_is_a_clear_error() -> None:
    with TestClient(make_app(protected=False)) as client:
        with pytest.raises(RuntimeError, match="add privguard.asgi.PrivacyMiddleware"):
            client.get("/state")
