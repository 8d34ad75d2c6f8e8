"""privguard.flask: the extension shape, config keys, template global and CLI."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask, make_response, render_template_string
from webtest import TestApp

from privguard.errors import ConfigError
from privguard.flask import PrivGuard, PrivGuardState, config_options, get_context

SECRET = "s" * 40
EEA = {"CF-IPCountry": "DE", "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}
US = {**EEA, "CF-IPCountry": "US"}
PEER = {"REMOTE_ADDR": "127.0.0.1"}
PAGE = """<html><body>
<p id="regime">{{ privguard.regime }}</p>
{% if privguard.allows('performance') %}<p id="perf">analytics on</p>{% endif %}
</body></html>"""


def make_app(**config: object) -> Flask:
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=SECRET,
        PRIVGUARD_LEDGER=None,
        PRIVGUARD_COUNTRY_HEADER="CF-IPCountry",
        PRIVGUARD_TRUSTED_PROXIES=["127.0.0.1"],
    )
    app.config.update(config)

    @app.get("/")
    def index():  # type: ignore[no-untyped-def]
        response = make_response(render_template_string(PAGE))
        response.set_cookie("_ga", "GA1.1.1")
        response.set_cookie("lang", "de")
        response.set_cookie("session", "s1")
        return response

    @app.get("/plain")
    def plain():  # type: ignore[no-untyped-def]
        response = make_response("<html><body>plain</body></html>")
        response.set_cookie("_ga", "GA1.1.1")
        return response

    return app


def banner_shown(html: str) -> bool:
    """The banner's root element is present and not ``hidden``."""
    match = re.search(r'<[^>]*\bid="privguard-banner"[^>]*>', html)
    return match is not None and re.search(r"\shidden[\s>=]", match.group(0)) is None


def client(app: Flask) -> TestApp:
    return TestApp(app, extra_environ=PEER)


def cookie_names(response: object) -> list[str]:
    return [v.split("=", 1)[0] for v in response.headers.getall("Set-Cookie")]  # type: ignore[attr-defined]


def test_protects_the_app_from_config_keys_alone() -> None:
    app = make_app()
    PrivGuard(app)
    response = client(app).get("/", headers=EEA)
    assert banner_shown(response.text)
    assert cookie_names(response) == ["session"]
    assert response.headers["Vary"].lower().count("cf-ipcountry") == 1
    assert '<p id="regime">gdpr</p>' in response.text
    assert 'id="perf"' not in response.text


def test_template_global_sees_the_us_defaults() -> None:
    app = make_app()
    PrivGuard(app)
    response = client(app).get("/", headers=US)
    assert '<p id="regime">us-optout</p>' in response.text
    assert '<p id="perf">analytics on</p>' in response.text
    assert sorted(cookie_names(response)) == ["_ga", "lang", "session"]


def test_template_global_is_none_outside_a_request() -> None:
    app = make_app()
    PrivGuard(app)
    with app.app_context():
        assert render_template_string("{{ privguard is none }}") == "True"
        assert get_context() is None


def test_get_context_inside_a_view() -> None:
    app = make_app()
    PrivGuard(app)
    seen = []

    @app.get("/ctx")
    def ctx():  # type: ignore[no-untyped-def]
        seen.append(get_context())
        return "ok"

    client(app).get("/ctx", headers=EEA)
    assert seen[0] is not None and seen[0].country == "DE" and seen[0].needs_banner


def test_banner_method_in_templates() -> None:
    app = make_app()
    PrivGuard(app)

    @app.get("/fragment")
    def fragment():  # type: ignore[no-untyped-def]
        response = make_response(render_template_string("<div>{{ privguard.banner() }}</div>"))
        response.headers["Content-Type"] = "text/plain"  # no automatic injection
        return response

    response = client(app).get("/fragment", headers=EEA)
    assert response.text.count('id="privguard-banner"') == 1
    assert "&lt;div" not in response.text  # markup, not escaped text


def test_privguard_banner_places_the_banner_once() -> None:
    app = make_app()
    PrivGuard(app)

    @app.get("/placed")
    def placed():  # type: ignore[no-untyped-def]
        return render_template_string(
            "<html><body><main>{{ privguard_banner() }}</main><p>after</p></body></html>"
        )

    response = client(app).get("/placed", headers=EEA)
    assert response.text.count('id="privguard-banner"') == 1
    assert response.text.index('id="privguard-banner"') < response.text.index("</main>")
    assert "Privguard-Skip" not in response.headers


def test_state_lives_in_app_extensions_not_on_the_extension() -> None:
    guard = PrivGuard(ledger=None)
    first, second = Flask("first"), Flask("second")
    first.config["SECRET_KEY"] = SECRET
    second.config["SECRET_KEY"] = "t" * 40
    second.config["PRIVGUARD_POLICY_VERSION"] = "7"
    guard.init_app(first)
    guard.init_app(second)
    one, two = first.extensions["privguard"], second.extensions["privguard"]
    assert isinstance(one, PrivGuardState) and isinstance(two, PrivGuardState)
    assert one.runtime is not two.runtime
    assert one.settings.policy_version == "1" and two.settings.policy_version == "7"
    assert not hasattr(guard, "app")
    assert first.wsgi_app is one.middleware


def test_constructor_keywords_survive_a_late_init_app() -> None:
    guard = PrivGuard(policy_version="3", age_gate_paths=["/checkout*"])
    app = make_app()
    guard.init_app(app)
    settings = app.extensions["privguard"].settings
    assert settings.policy_version == "3"
    assert settings.age_gate_paths == ("/checkout*",)


def test_explicit_keywords_win_over_config_keys() -> None:
    app = make_app(PRIVGUARD_POLICY_VERSION="2", PRIVGUARD_DEBUG_HEADERS=True)
    guard = PrivGuard(policy_version="5")
    guard.init_app(app, debug_headers=False)
    settings = app.extensions["privguard"].settings
    assert settings.policy_version == "5"
    assert settings.debug_headers is False


def test_secret_key_falls_back_to_flask_secret_key_and_privguard_key_wins() -> None:
    app = make_app(PRIVGUARD_SECRET_KEY="p" * 40)
    PrivGuard(app)
    assert app.extensions["privguard"].settings.secret_keys == (b"p" * 40,)
    app = make_app()
    PrivGuard(app)
    assert app.extensions["privguard"].settings.secret_keys == (SECRET.encode(),)


def test_missing_secret_is_a_config_error_naming_the_option() -> None:
    app = Flask(__name__)
    with pytest.raises(ConfigError) as info:
        PrivGuard(app, ledger=None)
    assert info.value.option == "secret_key"


def test_bad_config_value_names_the_option() -> None:
    app = make_app(PRIVGUARD_AGE_RULE="strictest")
    with pytest.raises(ConfigError) as info:
        PrivGuard(app)
    assert info.value.option == "age_rule"


@pytest.mark.parametrize(
    ("key", "value", "option", "expected"),
    [
        pytest.param("PRIVGUARD_HONOR_DNT", "false", "honor_dnt", False, id="bool-string"),
        pytest.param("PRIVGUARD_HONOR_DNT", False, "honor_dnt", False, id="bool-native"),
        pytest.param("PRIVGUARD_IPV4_PREFIX", "16", "ipv4_prefix", 16, id="int-string"),
        pytest.param(
            "PRIVGUARD_AGE_GATE_PATHS", "/a*, /b*", "age_gate_paths", ["/a*", "/b*"], id="list"
        ),
        pytest.param(
            "PRIVGUARD_COOKIES",
            '{"lang": "functionality"}',
            "cookies",
            {"lang": "functionality"},
            id="mapping-json",
        ),
        pytest.param("PRIVGUARD_TRUSTED_PROXIES", "2", "trusted_proxies", 2, id="hops"),
        pytest.param("PRIVGUARD_LEDGER", "none", "ledger", None, id="none"),
        pytest.param("PRIVGUARD_POLICY_URL", "/privacy", "policy_url", "/privacy", id="str"),
        pytest.param("PRIVGUARD_SECRET_KEY", "a,b" * 20, "secret_key", "a,b" * 20, id="secret"),
    ],
)
def test_config_values_parse_like_the_environment(
    key: str, value: object, option: str, expected: object
) -> None:
    assert config_options({key: value}) == {option: expected}


@pytest.mark.parametrize("flag", [False, "false", "0"])
def test_disabled_leaves_the_app_untouched(flag: object) -> None:
    app = make_app(PRIVGUARD_ENABLED=flag)
    original = app.wsgi_app
    PrivGuard(app)
    assert app.wsgi_app == original
    assert "privguard" not in app.extensions
    assert "privguard" not in app.cli.commands
    response = client(app).get("/plain", headers=EEA)
    assert "privguard-banner" not in response.text
    assert "_ga" in cookie_names(response)


def test_double_init_is_refused() -> None:
    app = make_app()
    guard = PrivGuard(app)
    with pytest.raises(RuntimeError):
        guard.init_app(app)


def test_consent_round_trip_through_flask() -> None:
    app = make_app()
    PrivGuard(app)
    browser = client(app)
    browser.get("/", headers=EEA)
    answer = browser.post(
        "/privguard/consent", {"accept": "all"}, headers={**EEA, "Origin": "http://localhost"}
    )
    assert answer.status_int == 303
    response = browser.get("/", headers=EEA)
    assert not banner_shown(response.text)
    assert sorted(cookie_names(response)) == ["_ga", "lang", "session"]
    assert '<p id="perf">analytics on</p>' in response.text


def test_exempt_view_gets_no_banner_but_cookies_are_still_filtered() -> None:
    app = make_app()
    guard = PrivGuard(app)

    @app.get("/embed")
    @guard.exempt
    def embed():  # type: ignore[no-untyped-def]
        response = make_response("<html><body>widget</body></html>")
        response.set_cookie("_fbp", "fb.1")
        return response

    response = client(app).get("/embed", headers=EEA)
    assert "privguard-banner" not in response.text
    assert "_fbp" not in cookie_names(response)


def test_cli_forwards_to_privguard_with_the_apps_ledger(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    app = make_app(PRIVGUARD_LEDGER=url)
    PrivGuard(app)
    browser = client(app)
    browser.post(
        "/privguard/consent", {"accept": "none"}, headers={**EEA, "Origin": "http://localhost"}
    )
    app.extensions["privguard"].runtime.close()  # flush the receipt
    result = app.test_cli_runner().invoke(args=["privguard", "ledger", "verify"])
    assert result.exit_code == 0, result.output
    assert "1 receipt" in result.output


def test_cli_explicit_ledger_wins(tmp_path: Path) -> None:
    app = make_app(PRIVGUARD_LEDGER=f"sqlite:///{tmp_path / 'app.db'}")
    PrivGuard(app)
    missing = f"sqlite:///{tmp_path / 'missing.db'}"
    result = app.test_cli_runner().invoke(
        args=["privguard", "ledger", "verify", "--ledger", missing]
    )
    assert result.exit_code == 2
    assert "missing.db" in result.output
