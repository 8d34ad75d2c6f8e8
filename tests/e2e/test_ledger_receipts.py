"""Every choice made through the endpoints becomes a receipt in the ledger."""

from flask import Flask
from webtest import TestApp

import privguard
from privguard.ledger import derive_ledger_keys, open_ledger

KEY = "ledger-e2e-key-" + "x" * 32


def test_choices_become_receipts_without_full_ip(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    app = Flask(__name__)
    app.get("/")(lambda: "<html><body>x</body></html>")
    privguard.protect(
        app, secret_key=KEY, ledger=url, country_header="CF-IPCountry", trusted_proxies=1
    )
    client = TestApp(
        app,
        extra_environ={
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_X_FORWARDED_FOR": "203.0.113.77",
            "HTTP_CF_IPCOUNTRY": "DE",
            "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) "
            "AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0 Safari/537.36",
        },
    )
    origin = {"Origin": "http://localhost"}
    client.post("/privguard/consent", {"accept": "all"}, headers=origin)
    client.post_json("/privguard/consent", {"categories": ["performance"]}, headers=origin)
    client.post("/privguard/age", {"birth_year": "1990"}, headers=origin)
    runtime = app.wsgi_app.runtime
    assert runtime.ledger.flush(10)
    runtime.close()
    ledger = open_ledger(url, keys=derive_ledger_keys([KEY]))
    try:
        rows = list(ledger.iter_receipts())
        assert [r.method for r in rows] == ["form", "json", "age"]
        assert rows[0].granted == ("functionality", "marketing", "necessary", "performance")
        assert rows[1].denied == ("functionality", "marketing")
        assert rows[2].age_status == "adult"
        assert {r.ip for r in rows} == {"203.0.113.0"} and {r.country for r in rows} == {"DE"}
        assert ledger.verify().ok
        text = repr(rows)
        assert "203.0.113.77" not in text and "1990" not in text and "Mozilla" not in text
    finally:
        ledger.close()
