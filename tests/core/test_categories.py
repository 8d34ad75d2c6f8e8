import pytest

from privguard.core.categories import Category, CookieCatalog, parse_category
from privguard.settings import Settings


@pytest.fixture(scope="module")
def catalog():
    return Settings(secret_key="k" * 32).catalog


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("sessionid", Category.NECESSARY, id="django-session"),
        pytest.param("csrftoken", Category.NECESSARY, id="csrf"),
        pytest.param("session", Category.NECESSARY, id="flask-session"),
        pytest.param("_ga", Category.PERFORMANCE, id="ga"),
        pytest.param("_ga_ABC123", Category.PERFORMANCE, id="ga4-glob"),
        pytest.param("_gid", Category.PERFORMANCE, id="gid"),
        pytest.param("_fbp", Category.MARKETING, id="fbp"),
        pytest.param("_gcl_au", Category.MARKETING, id="gcl"),
        pytest.param("lang", Category.FUNCTIONALITY, id="lang"),
        pytest.param("mystery", None, id="undeclared"),
        pytest.param("", None, id="empty"),
        pytest.param("_ga_", Category.PERFORMANCE, id="glob-empty-tail"),
    ],
)
def test_builtin_catalog(catalog, name, expected):
    assert catalog.classify(name) == expected


def test_shop_entries_win_over_builtin_and_longest_glob_wins():
    catalog = CookieCatalog.build(
        [("_ga", Category.PERFORMANCE), ("promo_*", Category.MARKETING)],
        [("_ga", Category.NECESSARY), ("promo_lang*", Category.FUNCTIONALITY)],
    )
    assert catalog.classify("_ga") == Category.NECESSARY
    assert catalog.classify("promo_lang_de") == Category.FUNCTIONALITY
    assert catalog.classify("promo_x") == Category.MARKETING


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("marketing", Category.MARKETING),
        (" Performance ", Category.PERFORMANCE),
        ("ads", None),
        (3, None),
        (None, None),
    ],
)
def test_parse_category(value, expected):
    assert parse_category(value) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("trk_a", "trk_*", id="glob"),
        pytest.param("trk_long_a", "trk_long_*", id="longest-glob"),
        pytest.param("trk", "trk", id="exact-wins"),
        pytest.param("other", None, id="undeclared"),
    ],
)
def test_pattern_names_the_deciding_entry(name, expected):
    catalog = CookieCatalog.build(
        [
            ("trk_*", Category.MARKETING),
            ("trk_long_*", Category.PERFORMANCE),
            ("trk", Category.FUNCTIONALITY),
        ]
    )
    assert catalog.pattern(name) == expected
