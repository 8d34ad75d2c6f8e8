"""TruncateIPFilter: no full client IP reaches an access log (logging.py)."""

from __future__ import annotations

import io
import ipaddress
import logging
import logging.config
import threading
import urllib.request
from collections.abc import Iterator

import pytest
from gunicorn.glogging import SafeAtoms
from hypothesis import assume, given
from hypothesis import strategies as st
from uvicorn.logging import AccessFormatter
from werkzeug.serving import make_server
from werkzeug.wrappers import Response

from privguard.core.clientip import truncate_ip
from privguard.logging import TruncateIPFilter, truncate_ips

GUNICORN_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TruncateIPFilter())
    logger = logging.getLogger("privguard.tests.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, stream, handler
    finally:
        logger.removeHandler(handler)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            '203.0.113.77 - - [25/Nov/2026 12:30:45] "GET / HTTP/1.1" 200 -',
            '203.0.113.0 - - [25/Nov/2026 12:30:45] "GET / HTTP/1.1" 200 -',
            id="werkzeug-line",
        ),
        pytest.param(
            '2001:db8:abcd:12::7 - - [25/Nov/2026:12:30:45 +0000] "GET /a?b=1 HTTP/2.0" 200 5',
            '2001:db8:abcd:: - - [25/Nov/2026:12:30:45 +0000] "GET /a?b=1 HTTP/2.0" 200 5',
            id="gunicorn-line-v6",
        ),
        pytest.param("203.0.113.77:51234", "203.0.113.0:51234", id="v4-port"),
        pytest.param("[2001:db8:abcd:12::7]:443", "[2001:db8:abcd::]:443", id="v6-bracket-port"),
        pytest.param("2001:db8:abcd:12::7:51234", "2001:db8:abcd:::51234", id="uvicorn-v6-port"),
        pytest.param("::ffff:203.0.113.77", "203.0.113.0", id="v4-mapped"),
        pytest.param("2002:cb00:714d::1", "203.0.113.0", id="6to4"),
        pytest.param("64:ff9b::cb00:714d", "203.0.113.0", id="nat64"),
        pytest.param("from 2001:db8:abcd:12::7.", "from 2001:db8:abcd::.", id="v6-end-of-sentence"),
        pytest.param("xff=198.51.100.7, 10.0.0.1", "xff=198.51.100.0, 10.0.0.0", id="two-ips"),
        pytest.param("client=203.0.113.77;", "client=203.0.113.0;", id="key-value"),
        pytest.param("peer host:203.0.113.77", "peer host:203.0.113.0", id="after-colon"),
        pytest.param("HTTP/1.1 HTTP/2.0", "HTTP/1.1 HTTP/2.0", id="http-versions-untouched"),
        pytest.param("at 12:30:45.123", "at 12:30:45.123", id="time-untouched"),
        pytest.param("[25/Nov/2026:12:30:45 +0000]", "[25/Nov/2026:12:30:45 +0000]", id="date"),
        pytest.param("mac 00:1a:2b:3c:4d:5e", "mac 00:1a:2b:3c:4d:5e", id="mac-untouched"),
        pytest.param("Chrome/131.0.6778.69", "Chrome/131.0.6778.69", id="chrome-version"),
        pytest.param("999.1.1.1 1.2.3", "999.1.1.1 1.2.3", id="not-ips"),
        pytest.param("std::vector", "std::vector", id="cpp-scope"),
        # the forms servers and libraries actually log
        pytest.param(
            "remote_addr:2001:db8:1:2::5", "remote_addr:2001:db8:1::", id="key-colon-v6-letter"
        ),
        pytest.param("remote_addr:203.0.113.77", "remote_addr:203.0.113.0", id="key-colon-v4"),
        pytest.param(
            "2001:db8:1:2::5: connection reset",
            "2001:db8:1::: connection reset",
            id="v6-colon-after",
        ),
        pytest.param(
            "203.0.113.77: connection reset", "203.0.113.0: connection reset", id="v4-colon-after"
        ),
        pytest.param("code:2001:db8:1:2::5", "code:2001:db8::", id="hex-letters-glued-before"),
        pytest.param(
            '::1:51234 - "GET / HTTP/1.1" 200',
            ':::51234 - "GET / HTTP/1.1" 200',
            id="uvicorn-v6-loopback",
        ),
        pytest.param(
            '::ffff:203.0.113.77 - - [25/Nov/2026 12:30:45] "GET / HTTP/1.1" 200 -',
            '203.0.113.0 - - [25/Nov/2026 12:30:45] "GET / HTTP/1.1" 200 -',
            id="werkzeug-mapped",
        ),
        pytest.param(
            "[::ffff:203.0.113.77]:443 GET /",
            "[203.0.113.0]:443 GET /",
            id="hypercorn-mapped-bracket",
        ),
        pytest.param(
            "::ffff:203.0.113.77:5000 - GET", "203.0.113.0:5000 - GET", id="mapped-with-port"
        ),
        pytest.param(
            'client: 2001:db8:1:2::5, server: shop, request: "GET / HTTP/1.1", '
            'upstream: "http://[2001:db8:1:2::9]:8000/"',
            'client: 2001:db8:1::, server: shop, request: "GET / HTTP/1.1", '
            'upstream: "http://[2001:db8:1::]:8000/"',
            id="nginx-error-log",
        ),
        pytest.param(
            '2001:db8:1:2::5 - - [25/Nov/2026:12:30:45 +0000] "GET / HTTP/1.1" 200 612 "-" "curl"',
            '2001:db8:1:: - - [25/Nov/2026:12:30:45 +0000] "GET / HTTP/1.1" 200 612 "-" "curl"',
            id="nginx-combined-v6",
        ),
        pytest.param(
            '{"remote_addr":"2001:db8:1:2::5","status":200}',
            '{"remote_addr":"2001:db8:1::","status":200}',
            id="json-log",
        ),
        pytest.param(
            "remote_addr=2001:db8:1:2::5 remote_port=443",
            "remote_addr=2001:db8:1:: remote_port=443",
            id="logfmt",
        ),
        pytest.param("fe80::1:2:3:4%eth0 up", "fe80::%eth0 up", id="scoped-link-local"),
        pytest.param(
            "peer ('203.0.113.77', 51234)", "peer ('203.0.113.0', 51234)", id="tuple-repr"
        ),
        pytest.param(
            "peer ('2001:db8:1:2::5', 51234, 0, 0)",
            "peer ('2001:db8:1::', 51234, 0, 0)",
            id="v6-repr",
        ),
        pytest.param("no address here", "no address here", id="plain"),
    ],
)
def test_truncate_ips(text: str, expected: str) -> None:
    assert truncate_ips(text) == expected


def test_prefixes_are_configurable() -> None:
    assert truncate_ips("203.0.113.77 2001:db8:abcd:12::7", 16, 32) == "203.0.0.0 2001:db8::"
    with pytest.raises(ValueError):
        TruncateIPFilter(ipv4_prefix=33)
    with pytest.raises(ValueError):
        TruncateIPFilter(ipv6_prefix=-1)


def test_message_and_args(capture: tuple[logging.Logger, io.StringIO, logging.Handler]) -> None:
    logger, stream, _ = capture
    logger.info("login from 203.0.113.77")
    logger.info("%s - %s - %d", "198.51.100.23", ipaddress.ip_address("2001:db8:1:2::3"), 200)
    logger.info("client %(ip)s", {"ip": "198.51.100.23"})
    logger.info("asgi client %s", ("198.51.100.23", 51234))
    out = stream.getvalue()
    assert out.splitlines() == [
        "login from 203.0.113.0",
        "198.51.100.0 - 2001:db8:1:: - 200",
        "client 198.51.100.0",
        "asgi client ('198.51.100.0', 51234)",
    ]


def test_record_is_kept_and_non_string_args_untouched() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%d %s %r", (7, None, 1.5), None)
    assert TruncateIPFilter().filter(record) is True
    assert record.args == (7, None, 1.5)
    assert record.getMessage() == "7 None 1.5"


def test_gunicorn_atoms_are_rewritten_in_place(
    capture: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, _ = capture
    atoms = SafeAtoms(
        {
            "h": "203.0.113.77",
            "l": "-",
            "u": "-",
            "t": "[25/Nov/2026:12:30:45 +0000]",
            "r": "GET /?from=198.51.100.23 HTTP/1.1",
            "s": "200",
            "b": "5",
            "f": "-",
            "a": "curl/8.5.0",
            "{x-forwarded-for}i": "198.51.100.23, 10.0.0.2",
        }
    )
    logger.info(GUNICORN_FORMAT + " %({x-forwarded-for}i)s %({missing}i)s", atoms)
    line = stream.getvalue().strip()
    assert line == (
        '203.0.113.0 - - [25/Nov/2026:12:30:45 +0000] "GET /?from=198.51.100.0 HTTP/1.1" 200 5 '
        '"-" "curl/8.5.0" 198.51.100.0, 10.0.0.0 -'
    )


def test_uvicorn_access_formatter(
    capture: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, stream, handler = capture
    handler.setFormatter(
        AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    )
    logger.info('%s - "%s %s HTTP/%s" %d', "203.0.113.77:51234", "GET", "/", "1.1", 200)
    logger.info('%s - "%s %s HTTP/%s" %d', "2001:db8:abcd:12::7:51234", "GET", "/", "2", 404)
    lines = stream.getvalue().splitlines()
    assert lines[0] == '203.0.113.0:51234 - "GET / HTTP/1.1" 200 OK'
    assert lines[1].startswith('2001:db8:abcd:::51234 - "GET / HTTP/2"')


def test_real_werkzeug_server_log_has_no_full_ip() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TruncateIPFilter())
    logger = logging.getLogger("werkzeug")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        return Response("ok")(environ, start_response)

    server = make_server("127.0.0.1", 0, app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/x") as resp:
            assert resp.read() == b"ok"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    out = stream.getvalue()
    assert '"GET /x HTTP/1.1" 200' in out
    assert "127.0.0.0 - -" in out
    assert "127.0.0.1" not in out


# -- properties ---------------------------------------------------------------------------

_DELIMS = st.sampled_from(
    [" ", '"', "[", "]", "(", ")", "=", ",", ";", "- ", "\t", "'", "<", ":", ": ", "addr:", "ip_"]
)
_TEXT = st.text(alphabet=st.characters(codec="ascii", exclude_categories=("Cc",)), max_size=30)


@st.composite
def _ip_in_context(draw: st.DrawFn) -> tuple[str, str]:
    ip = str(draw(st.ip_addresses()))
    assume(truncate_ip(ip) != ip)
    shape = draw(st.sampled_from(["bare", "port"]))
    token = ip
    if shape == "port":
        token = f"{ip}:{draw(st.integers(1, 65535))}" if ":" not in ip else f"[{ip}]:80"
    text = draw(_TEXT) + draw(_DELIMS) + token + draw(_DELIMS) + draw(_TEXT)
    return ip, text


@given(_ip_in_context())
def test_filter_output_never_contains_the_full_ip(case: tuple[str, str]) -> None:
    ip, text = case
    record = logging.LogRecord(
        "access", logging.INFO, __file__, 1, text.replace("%", "%%") + " %s %s", (text, ip), None
    )
    TruncateIPFilter().filter(record)
    assert ip not in record.getMessage()


@given(st.text(max_size=80))
def test_truncate_ips_never_raises(text: str) -> None:
    out = truncate_ips(text)
    assert isinstance(out, str)
    assert truncate_ips(out) == out  # idempotent


def test_dict_config_snippet_from_the_docstring() -> None:
    # what logging.config.dictConfig does with the docstring's "filters" entry,
    # without reconfiguring the test process's logging
    configurator = logging.config.DictConfigurator({})
    made = configurator.configure_filter(
        {"()": "privguard.logging.TruncateIPFilter", "ipv4_prefix": 16}
    )
    assert isinstance(made, TruncateIPFilter)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s GET /", ("203.0.113.77",), None)
    assert made.filter(record) and record.getMessage() == "203.0.0.0 GET /"


def test_werkzeug_request_handler_logs_truncated_addresses(caplog):
    import threading
    import urllib.request

    from werkzeug.serving import make_server

    from privguard.logging import werkzeug_request_handler

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = make_server("127.0.0.1", 0, app, request_handler=werkzeug_request_handler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with caplog.at_level(logging.INFO, logger="werkzeug"):
            with urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/") as resp:
                assert resp.read() == b"ok"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    access = [r.getMessage() for r in caplog.records if "GET / HTTP" in r.getMessage()]
    assert access and access[0].startswith("127.0.0.0 ")
    assert "127.0.0.1" not in caplog.text


def _free_port(host: str) -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def test_real_uvicorn_access_log_over_ipv6_has_no_full_ip() -> None:
    """uvicorn logs an IPv6 client as ``::1:PORT`` (no brackets): truncated, port kept."""
    import asyncio
    import time

    import uvicorn

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TruncateIPFilter())
    handler.setFormatter(AccessFormatter("%(client_addr)s - %(request_line)s", use_colors=False))
    logger = logging.getLogger("uvicorn.access")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    port = _free_port("::1")
    config = uvicorn.Config(
        app, host="::1", port=port, lifespan="off", ws="none", log_config=None, access_log=True
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        with urllib.request.urlopen(f"http://[::1]:{port}/x") as resp:
            assert resp.read() == b"ok"
    finally:
        server.should_exit = True
        thread.join(10)
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
    out = stream.getvalue()
    assert "GET /x HTTP/1.1" in out, out
    assert out.startswith(":::"), out  # "::" (the truncated ::1) + ":" + port
    assert "::1:" not in out, out
