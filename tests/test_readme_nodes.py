"""The README's "Running on several workers and nodes" blocks, run for real.

``nodes: run`` is run as written -- its exports and its gunicorn command, with
``nodes: gunicorn.conf.py`` as the configuration -- except that the database,
Redis and bind addresses are this machine's throwaway PostgreSQL and
redis-server. Two gunicorn workers take choices, one client hammers both,
then gunicorn is stopped with SIGTERM: one receipt per accepted choice, and the
hammering client limited once, not once per worker.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import privguard
from privguard.ledger import derive_ledger_keys, open_ledger
from tests.appserver import free_port
from tests.ledger.conftest import pg_cluster, pg_url  # noqa: F401 (fixtures)
from tests.readme import block
from tests.redis_server import RedisServer, redis_server  # noqa: F401 (fixture)

KEY = "readme-nodes-key-" + "k" * 40
SHOP = """
import flask
import privguard

shop = flask.Flask(__name__)


@shop.get("/")
def index():
    return "<!doctype html><html><head><title>shop</title></head><body>shop</body></html>"


app = privguard.protect(shop, settings=privguard.Settings.from_env())
"""
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def exports(lines: list[str]) -> dict[str, str]:
    found = {}
    for line in lines:
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = value.strip('"')
    return found


def test_the_readme_env_is_valid_settings() -> None:
    env = exports(block("nodes: run").commands())
    env["PRIVGUARD_SECRET_KEY"] = KEY  # the README reads it from a secret file
    settings = privguard.Settings.from_env(env)
    assert settings.ledger is not None and settings.ledger.startswith("postgresql://")
    assert settings.rate_limit_storage.startswith("redis://")


def test_gunicorn_nodes_as_in_the_readme(
    tmp_path: Path,
    pg_url: str,  # noqa: F811
    redis_server: RedisServer,  # noqa: F811
) -> None:
    redis_server.flush()
    (tmp_path / "gunicorn.conf.py").write_text(block("nodes: gunicorn.conf.py").body)
    (tmp_path / "shop.py").write_text(SHOP)
    commands = block("nodes: run").commands()
    env = {
        **os.environ,
        **exports(commands),
        "PRIVGUARD_SECRET_KEY": KEY,
        "PRIVGUARD_LEDGER": pg_url,
        "PRIVGUARD_RATE_LIMIT_STORAGE": redis_server.url(7),
        "PRIVGUARD_TRUSTED_PROXIES": "127.0.0.1/32",
        "PRIVGUARD_RATE_LIMIT": "5/minute",
        "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path]),
    }
    run = shlex.split(next(c for c in commands if c.startswith("gunicorn ")))
    port = free_port()
    run[run.index("--bind") + 1] = f"127.0.0.1:{port}"
    args = [sys.executable, "-m", *run, "--workers", "2"]  # fewer than the sample's 4
    open_ledger(pg_url).close()
    log = (tmp_path / "gunicorn.log").open("wb")
    proc = subprocess.Popen(args, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    headers = {"Host": "shop.test", "User-Agent": UA, "Accept": "text/html"}
    accepted = 0
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                if httpx.get(base + "/privguard/consent", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=30) as client:
            for n in range(40):  # first-time visitors, each a page view and a choice
                me = {**headers, "X-Forwarded-For": f"198.51.100.{n + 1}"}
                client.cookies.clear()
                page = client.get("/", headers=me)
                token = TOKEN.search(page.text)
                assert token is not None
                resp = client.post(
                    "/privguard/consent",
                    headers={**me, "Origin": "http://shop.test"},
                    data={"accept": "none", "csrf_token": token.group(1)},
                    follow_redirects=False,
                )
                assert resp.status_code == 303, resp.text
                accepted += 1
            hammer = {**headers, "X-Forwarded-For": "192.0.2.9", "Origin": "http://shop.test"}
            statuses = []
            for _ in range(20):  # two workers, one count in Redis
                client.cookies.clear()
                statuses.append(
                    client.post(
                        "/privguard/consent", headers=hammer, json={"accept": "all"}
                    ).status_code
                )
        assert statuses == [200] * 5 + [429] * 15, statuses
        accepted += 5
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()
    # the workers keyed the chain with the secret; verify with the same key
    with open_ledger(pg_url, keys=derive_ledger_keys([KEY])) as ledger:
        receipts = list(ledger.iter_receipts())
        assert ledger.verify().ok
    assert len(receipts) == len({r.id for r in receipts}) == accepted


@pytest.mark.parametrize("tag", ["nodes: gunicorn.conf.py"])
def test_the_gunicorn_conf_names_real_hooks(tag: str) -> None:
    namespace: dict[str, object] = {}
    exec(compile(block(tag).body, "gunicorn.conf.py", "exec"), namespace)
    for hook in ("worker_exit", "worker_int", "worker_abort", "on_exit"):
        assert callable(namespace[hook])
    assert namespace["workers"] == 4
