"""The pytest plugin as a shop's test suite sees it: installed, never imported by hand.

Each test writes a small test suite and runs it with ``pytester``; the only
conftest is the shop's own, defining ``privguard_settings``.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.filterwarnings("error")

SHOP_CONFTEST = """
import pytest
from privguard import Settings
from privguard.wsgi import PrivacyMiddleware

SETTINGS = Settings(
    secret_key="plugin-tests-secret-key-0123456789abcdef",
    country_header="CF-IPCountry",
    trusted_proxies=["127.0.0.1"],
    ledger=None,
    rate_limit=None,
)


def bare(environ, start_response):
    body = b"<html><body>shop</body></html>"
    start_response("200 OK", [
        ("Content-Type", "text/html"),
        ("Set-Cookie", "session=1; Path=/"),
        ("Set-Cookie", "_ga=GA1.1; Path=/"),
        ("Set-Cookie", "_fbp=fb.1; Path=/"),
    ])
    return [body]


@pytest.fixture
def privguard_settings():
    return SETTINGS


@pytest.fixture
def client():
    from werkzeug.test import Client
    return Client(PrivacyMiddleware(bare, SETTINGS), use_cookies=False)


@pytest.fixture
def leaky_client():
    from werkzeug.test import Client
    return Client(bare, use_cookies=False)
"""


@pytest.fixture
def shop(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(SHOP_CONFTEST)
    return pytester


def test_factory_fixture_and_marker_without_imports(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        test_shop="""
        import pytest
        from privguard.testing import (
            assert_banner_hidden, assert_banner_shown, assert_cookie_allowed,
            assert_no_nonessential_cookies,
        )

        def test_factory(client, privguard_visitor):
            v = privguard_visitor(country="DE")
            assert v.headers["CF-IPCountry"] == "DE"
            assert v.environ["REMOTE_ADDR"] == "127.0.0.1"
            response = client.get("/", environ_overrides=v.environ)
            assert_no_nonessential_cookies(response)
            assert_banner_shown(response)

        def test_prior_consent(client, privguard_visitor):
            v = privguard_visitor(country="FR", consent=["performance"])
            assert list(v.cookies) == ["privguard_consent"]
            response = client.get("/", environ_overrides=v.environ)
            assert_cookie_allowed(response, "_ga")
            assert_banner_hidden(response)

        @pytest.mark.privguard_visitor(country="DE")
        @pytest.mark.privguard_visitor(country="DE", gpc=True)
        @pytest.mark.privguard_visitor(state="CA", gpc=True)
        @pytest.mark.privguard_visitor(country="BR", consent="all", dnt=True)
        def test_marker(client, visitor):
            response = client.get("/", environ_overrides=visitor.environ)
            if visitor.consent is None and visitor.country == "DE":
                assert_no_nonessential_cookies(response)
            else:
                assert_cookie_allowed(response, "_ga")
        """
    )
    result = shop.runpytest("-v", "--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [
            "*test_marker?DE? PASSED*",
            "*test_marker?DE-gpc? PASSED*",
            "*test_marker?US-CA-gpc? PASSED*",
            "*test_marker?BR-dnt-consent_all? PASSED*",
        ]
    )


def test_module_and_class_markers(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        test_levels="""
        import pytest

        pytestmark = [
            pytest.mark.privguard_visitor(country="FR"),
            pytest.mark.privguard_visitor(country="IT", age_status="adult"),
        ]

        def test_module_level(visitor):
            assert visitor.country in ("FR", "IT")

        @pytest.mark.privguard_visitor(country="JP", bot=True)
        class TestShop:
            def test_class_level(self, visitor):
                assert visitor.bot

            @pytest.mark.privguard_visitor(country="NO")
            def test_closest_wins(self, visitor):
                assert visitor.country == "NO"
        """
    )
    result = shop.runpytest("-v", "--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        [
            "*test_module_level?FR? PASSED*",
            "*test_module_level?IT-adult? PASSED*",
            "*test_class_level?JP-bot? PASSED*",
            "*test_closest_wins?NO? PASSED*",
        ]
    )


def test_failure_names_cookie_category_and_visitor(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        test_leak="""
        import pytest
        from privguard.testing import assert_no_nonessential_cookies, assert_cookie_blocked

        @pytest.mark.privguard_visitor(country="DE")
        def test_first_visit(leaky_client, visitor):
            assert_no_nonessential_cookies(leaky_client.get("/", environ_overrides=visitor.environ))

        @pytest.mark.privguard_visitor(state="CA", gpc=True)
        def test_gpc(leaky_client, visitor):
            response = leaky_client.get("/", environ_overrides=visitor.environ)
            assert_cookie_blocked(response, "_fbp", visitor=visitor)
        """
    )
    result = shop.runpytest("--strict-markers", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*non-essential cookie(s) set for visitor DE at http://localhost/*",
            "*'_ga' (performance): Set-Cookie: _ga=GA1.1; Path=/*",
            "*'_fbp' (marketing): Set-Cookie: _fbp=fb.1; Path=/*",
            "*cookie '_fbp' (marketing) was set for US-CA visitor, GPC, no consent choice yet*",
        ]
    )
    result.stdout.no_fnmatch_line("*'session'*")


def test_marker_arguments_are_checked_against_the_signature(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.privguard_visitor(contry="DE")
        def test_typo(visitor):
            pass
        """
    )
    result = shop.runpytest("--strict-markers", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(
        ["*privguard_visitor: got an unexpected keyword argument 'contry'*"]
    )


def test_marker_is_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["@pytest.mark.privguard_visitor(country='DE'*"])


def test_missing_settings_fixture_says_what_to_do(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_nosettings="""
        def test_it(privguard_visitor):
            privguard_visitor(country="DE")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*Define a fixture in conftest.py*", "*def privguard_settings():*"]
    )


def test_settings_from_the_ini_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        shop_settings="""
        from privguard import Settings
        SETTINGS = Settings(secret_key="k" * 32, country_header="X-Country",
                            trusted_proxies=["127.0.0.1"], ledger=None)
        """
    )
    pytester.makeini("[pytest]\nprivguard_settings = shop_settings:SETTINGS\npythonpath = .\n")
    pytester.makepyfile(
        test_ini="""
        import pytest

        @pytest.mark.privguard_visitor(country="AT", age_status="minor")
        def test_it(visitor, privguard_settings):
            assert visitor.headers["X-Country"] == "AT"
            assert privguard_settings.country_header == "x-country"
            assert "privguard_consent" in visitor.cookies
        """
    )
    result = pytester.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_it?AT-minor? PASSED*"])


def test_visitor_fixture_needs_the_marker(shop: pytest.Pytester) -> None:
    shop.makepyfile(
        test_nomark="""
        def test_it(visitor):
            pass
        """
    )
    result = shop.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*the `visitor` fixture comes from @pytest.mark.privguard_visitor*"]
    )


def test_untrusted_country_header_is_refused(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest
        from privguard import Settings

        @pytest.fixture
        def privguard_settings():
            return Settings(secret_key="k" * 32, country_header="CF-IPCountry", ledger=None)
        """
    )
    pytester.makepyfile(
        test_untrusted="""
        def test_it(privguard_visitor):
            privguard_visitor(country="DE")
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*add trusted_proxies=?'127.0.0.1'? to the test settings*"])


def test_marker_shows_the_banner_in_the_visitors_language(shop: pytest.Pytester) -> None:
    """A shop's suite runs one test per language through the marker's ``language``."""
    shop.makepyfile(
        test_languages="""
        import re
        import pytest

        LANGS = ["en", "pl", "pt-BR", "nb-NO", "no", "de-AT", "ga"]

        @pytest.mark.parametrize("header", LANGS)
        def test_banner_language(client, privguard_visitor, header):
            v = privguard_visitor(country="DE", language=header)
            page = client.get("/", environ_overrides=v.environ).get_data(as_text=True)
            lang = re.search(r'id="privguard-banner"[^>]* lang="([^"]+)"', page).group(1)
            assert lang == {"nb-NO": "nb", "no": "nb", "de-AT": "de"}.get(header, header)

        @pytest.mark.privguard_visitor(country="IT", language="it")
        @pytest.mark.privguard_visitor(country="SE", language="sv")
        def test_marker(client, visitor):
            page = client.get("/", environ_overrides=visitor.environ).get_data(as_text=True)
            assert f'lang="{visitor.language}"' in page
        """
    )
    result = shop.runpytest("-v", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=9)
    result.stdout.fnmatch_lines(["*test_marker?IT-it? PASSED*", "*test_marker?SE-sv? PASSED*"])
