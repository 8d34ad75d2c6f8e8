"""Browser family and bot verdict (useragent.py)."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from privguard.useragent import MAX_LENGTH, UserAgents, is_bot_agent

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"
SAFARI = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.6 Safari/605.1.15"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
EDGE = CHROME + " Edg/131.0.0.0"
CUBOT = (
    "Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)


@pytest.fixture(scope="module")
def agents() -> UserAgents:
    return UserAgents()


@pytest.mark.parametrize(
    ("ua", "family"),
    [
        pytest.param(CHROME, "Chrome", id="chrome"),
        pytest.param(FIREFOX, "Firefox", id="firefox"),
        pytest.param(SAFARI, "Safari", id="safari"),
        pytest.param(IPHONE, "Mobile Safari", id="iphone-safari"),
        pytest.param(ANDROID, "Chrome Mobile", id="android-chrome"),
        pytest.param(EDGE, "Edge", id="edge"),
        pytest.param(CUBOT, "Chrome Mobile", id="cubot-phone-is-not-a-bot"),
    ],
)
def test_browsers_are_people(agents: UserAgents, ua: str, family: str) -> None:
    assert agents.parse(ua) == (family, False)


@pytest.mark.parametrize(
    "ua",
    [
        pytest.param("curl/8.5.0", id="curl"),
        pytest.param("Wget/1.21.4", id="wget"),
        pytest.param("python-requests/2.32.3", id="python-requests"),
        pytest.param("python-httpx/0.28.1", id="python-httpx"),
        pytest.param("Python-urllib/3.12", id="python-urllib"),
        pytest.param("Go-http-client/2.0", id="go"),
        pytest.param("okhttp/4.12.0", id="okhttp"),
        pytest.param("Java/17.0.2", id="java"),
        pytest.param("libwww-perl/6.72", id="libwww-perl"),
        pytest.param("Scrapy/2.11.2 (+https://scrapy.org)", id="scrapy"),
        pytest.param("aiohttp/3.9", id="aiohttp"),
        pytest.param(
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "HeadlessChrome/131.0.0.0 Safari/537.36",
            id="headless-chrome",
        ),
        pytest.param(
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            id="googlebot",
        ),
        pytest.param(
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 "
            "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            id="googlebot-smartphone",
        ),
        pytest.param(
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", id="bingbot"
        ),
        pytest.param("DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)", id="ddg"),
        pytest.param(
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            id="baidu",
        ),
        pytest.param(
            "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", id="yandex"
        ),
        pytest.param(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like "
            "Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
            id="applebot",
        ),
        pytest.param(
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            id="facebook",
        ),
        pytest.param(
            "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", id="ahrefs"
        ),
        pytest.param(
            "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
            id="semrush",
        ),
        pytest.param(
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; "
            "+https://openai.com/gptbot)",
            id="gptbot",
        ),
        pytest.param(
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; "
            "+claudebot@anthropic.com)",
            id="claudebot",
        ),
        pytest.param("Some-Unknown-Crawler/0.1", id="generic-crawler"),
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
    ],
)
def test_bots(agents: UserAgents, ua: str) -> None:
    assert agents.parse(ua)[1] is True


def test_bot_families(agents: UserAgents) -> None:
    assert agents.parse("curl/8.5.0")[0] == "curl"
    assert agents.parse(
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    ) == ("Googlebot", True)


@pytest.mark.parametrize(
    "ua",
    [
        pytest.param("garbage", id="word"),
        pytest.param("\x00\xff\u202e", id="control-and-bidi"),
        pytest.param("\ud800broken", id="lone-surrogate"),
        pytest.param("A" * 100_000, id="huge"),
        pytest.param("((((((((((", id="parens"),
    ],
)
def test_garbage_never_raises(agents: UserAgents, ua: str) -> None:
    family, is_bot = agents.parse(ua)
    assert family is None or isinstance(family, str)
    assert isinstance(is_bot, bool)


def test_non_string_is_not_parsed(agents: UserAgents) -> None:
    assert agents.parse(None) == (None, False)  # type: ignore[arg-type]


def test_cache_is_bounded_lru_and_per_instance() -> None:
    small = UserAgents(cache_size=2)
    other = UserAgents(cache_size=2)
    for ua in (CHROME, FIREFOX, SAFARI, CHROME):
        small.parse(ua)
    info = small._cached.cache_info()
    assert info.currsize == 2 and info.maxsize == 2
    assert other._cached.cache_info().currsize == 0
    small.parse(CHROME)  # most recently used: still cached
    assert small._cached.cache_info().hits == 1


def test_long_agents_are_cut_before_caching() -> None:
    agents = UserAgents(cache_size=4)
    agents.parse(CHROME + "x" * 10_000)
    agents.parse(CHROME + "x" * 20_000)  # same first MAX_LENGTH characters
    assert agents._cached.cache_info().currsize == 1
    assert len(CHROME) < MAX_LENGTH


def test_threads(agents: UserAgents) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for i in range(200):
                assert agents.parse(f"{CHROME} {i % 50}")[1] is False
        except BaseException as exc:  # pragma: no cover - the failure being tested
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@given(st.text(max_size=300))
def test_parse_never_raises(ua: str) -> None:
    family, is_bot = UserAgents(cache_size=16).parse(ua)
    assert family is None or (isinstance(family, str) and family != "Other")
    assert isinstance(is_bot, bool)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        pytest.param("PHP/8.2", True, id="php-product"),
        pytest.param("Dart/3.2 (dart:io)", True, id="dart-product"),
        pytest.param("Mozilla/5.0 (compatible; Java applet)", False, id="java-not-first"),
        pytest.param("TelegramBot (like TwitterBot)", True, id="telegram"),
        pytest.param(
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True, id="slack"
        ),
        pytest.param(
            "Mozilla/5.0 (compatible; archive.org_bot +http://archive.org/details/archive.org_bot)",
            True,
            id="archive-org",
        ),
        pytest.param("Mozilla/5.0 (compatible; Yahoo! Slurp)", True, id="slurp"),
        pytest.param(CUBOT, False, id="cubot-phone"),
        pytest.param(CHROME, False, id="chrome"),
        pytest.param("", False, id="empty-has-no-bot-token"),
    ],
)
def test_is_bot_agent(ua: str, expected: bool) -> None:
    assert is_bot_agent(ua) is expected
