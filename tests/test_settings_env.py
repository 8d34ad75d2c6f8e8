"""Settings.from_env(): PRIVGUARD_* variables parse to the same values as keywords.

Also keeps the README's options table equal to ``privguard.settings.options_table()``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from privguard import ConfigError, Settings
from privguard.core.categories import Category
from privguard.settings import OPTIONS, options_table

SECRET = "e" * 40
README = Path(__file__).resolve().parents[1] / "README.md"


def from_env(**variables: str) -> Settings:
    env = {"PRIVGUARD_SECRET_KEY": SECRET, **{f"PRIVGUARD_{k}": v for k, v in variables.items()}}
    return Settings.from_env(env)


def from_keywords(**options: Any) -> Settings:
    return Settings(**{"secret_key": SECRET, **options})


def env_value(settings: Settings, option: str) -> Any:
    """What the env and keyword forms must agree on: the validated attribute."""
    return getattr(settings, option)


@pytest.mark.parametrize(
    ("variable", "text", "option", "keyword"),
    [
        # lists: comma-separated, blanks around items ignored
        pytest.param(
            "AGE_GATE_PATHS",
            "/checkout*, /account/register*",
            "age_gate_paths",
            ["/checkout*", "/account/register*"],
            id="list",
        ),
        pytest.param("LANGUAGES", "de,en", "languages", ["de", "en"], id="list-languages"),
        pytest.param(
            "COOKIE_DOMAINS",
            "shop.example, .example.org",
            "cookie_domains",
            ["shop.example", ".example.org"],
            id="list-domains",
        ),
        pytest.param("COOKIE_DOMAINS", "", "cookie_domains", [], id="list-empty"),
        pytest.param("COOKIE_DOMAINS", "none", "cookie_domains", [], id="list-none"),
        # mappings: JSON objects
        pytest.param(
            "COUNTRY_REGIMES",
            '{"BR": "gdpr", "US-CA": "gdpr"}',
            "regions",
            {"BR": "gdpr", "US-CA": "gdpr"},
            id="mapping-regimes",
        ),
        pytest.param("AGE_OVERRIDES", '{"FR": 15}', "age_rules", {"FR": 15}, id="mapping-ages"),
        pytest.param(
            "TEXTS",
            '{"en": {"title": "Cookies?"}}',
            "texts",
            {"en": {"title": "Cookies?"}},
            id="mapping-texts",
        ),
        # booleans: true/false/1/0, any case
        pytest.param("HONOR_DNT", "false", "honor_dnt", False, id="bool-false"),
        pytest.param("HONOR_DNT", "0", "honor_dnt", False, id="bool-0"),
        pytest.param("CONSENT_MODE", "true", "consent_mode", True, id="bool-true"),
        pytest.param("CONSENT_MODE", "1", "consent_mode", True, id="bool-1"),
        pytest.param("DEBUG_HEADERS", "TRUE", "debug_headers", True, id="bool-upper"),
        # none or empty means None
        pytest.param("LEDGER", "none", "ledger", None, id="none"),
        pytest.param("LEDGER", "None", "ledger", None, id="none-case"),
        pytest.param("RATE_LIMIT", "", "rate_limit", None, id="empty"),
        pytest.param("POLICY_URL", "  ", "policy_url", None, id="blank"),
        pytest.param("COUNTRY_HEADER", "none", "country_header", None, id="none-header"),
        # integers and durations
        pytest.param("IPV4_PREFIX", "16", "ipv4_prefix", 16, id="int"),
        pytest.param("CONSENT_MAX_AGE", "3600", "consent_max_age", 3600, id="duration"),
        # proxies: a hop count or a list of networks
        pytest.param("TRUSTED_PROXIES", "2", "trusted_proxies", 2, id="proxies-hops"),
        pytest.param(
            "TRUSTED_PROXIES",
            "10.0.0.0/8, 127.0.0.1",
            "trusted_proxies",
            ["10.0.0.0/8", "127.0.0.1"],
            id="proxies-networks",
        ),
        # strings
        pytest.param("POLICY_VERSION", "2026-03", "policy_version", "2026-03", id="str"),
        pytest.param(
            "COUNTRY_HEADER", "CF-IPCountry", "country_header", "CF-IPCountry", id="optional-str"
        ),
        pytest.param(
            "LEDGER", "sqlite:///tmp/x.db", "ledger", "sqlite:///tmp/x.db", id="ledger-url"
        ),
        pytest.param("AGE_RULE", "member-state", "age_rule", "member-state", id="choice"),
    ],
)
def test_env_parses_to_the_keyword_value(
    variable: str, text: str, option: str, keyword: Any
) -> None:
    name = variable.lower()
    env_settings = from_env(**{variable: text})
    keyword_settings = from_keywords(**{name: keyword})
    assert env_value(env_settings, option) == env_value(keyword_settings, option)
    assert type(env_value(env_settings, option)) is type(env_value(keyword_settings, option))


def test_mapping_cookies_classify_like_keywords() -> None:
    env = from_env(
        COOKIES='{"promo_*": "marketing", "wishlist": {"category": '
        '"functionality", "paths": ["/account"]}}'
    )
    keywords = from_keywords(
        cookies={
            "promo_*": "marketing",
            "wishlist": {"category": "functionality", "paths": ["/account"]},
        }
    )
    for settings in (env, keywords):
        assert settings.catalog.classify("promo_spring") is Category.MARKETING
        assert settings.catalog.classify("wishlist") is Category.FUNCTIONALITY
    assert env.cookie_paths == keywords.cookie_paths


def test_secret_key_list_is_comma_separated_for_rotation() -> None:
    settings = Settings.from_env({"PRIVGUARD_SECRET_KEY": f"{'n' * 40},{'o' * 40}"})
    assert settings.secret_keys == (b"n" * 40, b"o" * 40)


def test_keyword_overrides_win_over_the_environment() -> None:
    env = {"PRIVGUARD_SECRET_KEY": SECRET, "PRIVGUARD_POLICY_VERSION": "2"}
    assert Settings.from_env(env, policy_version="3").policy_version == "3"


def test_unset_variables_keep_the_defaults() -> None:
    settings = from_env()
    defaults = from_keywords()
    for option in OPTIONS:
        if option.name == "secret_key":
            continue
        assert settings.raw[option.name] == defaults.raw[option.name], option.name


def test_unrelated_variables_are_ignored() -> None:
    settings = Settings.from_env({"PRIVGUARD_SECRET_KEY": SECRET, "PRIVGUARD_ENABLED": "false",
                                  "PRIVGUARDX": "1", "OTHER_LEDGER": "x"})  # fmt: skip
    assert settings.policy_version == "1"


def test_an_unknown_name_under_the_prefix_is_an_error() -> None:
    with pytest.raises(ConfigError, match="did you mean PRIVGUARD_UNKNOWN_COOKIES") as info:
        from_env(UNKNOW_COOKIES="allow")
    assert info.value.option == "PRIVGUARD_UNKNOW_COOKIES"
    with pytest.raises(ConfigError, match="PRIVGUARD_SOMETHING_ELSE.*no such option"):
        from_env(SOMETHING_ELSE="x")


@pytest.mark.parametrize(
    ("variable", "text", "option"),
    [
        pytest.param("HONOR_GPC", "maybe", "honor_gpc", id="bool"),
        pytest.param("IPV6_PREFIX", "forty", "ipv6_prefix", id="int"),
        pytest.param("COOKIES", "{not json", "cookies", id="json"),
        pytest.param("REGIMES", "[1, 2]", "regimes", id="json-not-object"),
        pytest.param("TRUSTED_PROXIES", "10.0.0.0/33", "trusted_proxies", id="cidr"),
        pytest.param("UNKNOWN_COOKIES", "sometimes", "unknown_cookies", id="choice"),
    ],
)
def test_bad_values_name_the_option(variable: str, text: str, option: str) -> None:
    with pytest.raises(ConfigError) as info:
        from_env(**{variable: text})
    assert info.value.option == option


def test_missing_secret_is_reported() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({})
    assert info.value.option == "secret_key"


def test_every_option_reads_from_the_environment() -> None:
    """Each option has an env kind the parser knows (no option left out of from_env)."""
    kinds = {
        "str",
        "optional-str",
        "bool",
        "consent-mode",
        "int",
        "duration",
        "list",
        "mapping",
        "proxies",
    }
    assert {o.env_kind for o in OPTIONS} <= kinds


def test_readme_options_table_is_generated_from_settings() -> None:
    text = README.read_text("utf-8")
    match = re.search(r"<!-- options:start -->\n(.*?)<!-- options:end -->", text, re.DOTALL)
    assert match is not None, "README.md lacks the <!-- options:start/end --> markers"
    assert match.group(1).strip() == options_table().strip(), (
        "README options table is stale: regenerate it with `python -m privguard.settings`"
    )
