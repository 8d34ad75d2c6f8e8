"""The README from ``pip install`` on: the wheel built from this checkout, installed into a
fresh venv outside the checkout, runs the quick starts (Flask, FastAPI under uvicorn, a
``django-admin startproject`` site set up as the README says), the QA-kit sample,
``privguard demo``, the ledger commands with the default file, ``privguard cookies``
without touching the ledger and ``privguard audit --region US`` failing on an app that
cannot see the region.

The wheel is built once and the venv made once per session; pip installs from its cache
where it can. Blocks are taken from README.md (``tests/readme.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.needs import unavailable
from tests.readme import README, block

ROOT = README.parent
SECRET_BLOCK = "setup: secret"
UA = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
HTML = {"User-Agent": UA, "Accept": "text/html"}
#: what the checks below need besides the wheel's extras
TOOLS = ["fastapi", "uvicorn", "pytest"]


@dataclass(frozen=True)
class Venv:
    root: Path
    work: Path  # a folder outside the checkout

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PRIVGUARD_LEDGER", "PRIVGUARD_SECRET_KEY")
        }
        env["PATH"] = f"{self.bin}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(self.root)
        env.update(extra)
        return env

    def run(
        self, script: str, cwd: Path, timeout: float = 180, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-c", "set -e\n" + script],
            cwd=cwd,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def folder(self, name: str) -> Path:
        path = self.work / name
        path.mkdir()
        return path


def _extras(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    return set(re.findall(r"^Provides-Extra: (\S+)$", metadata, re.MULTILINE))


@pytest.fixture(scope="session")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    base = tmp_path_factory.mktemp("wheel")
    assert ROOT not in base.parents
    started = time.monotonic()
    dist = base / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stdout}{build.stderr}")
    (wheel,) = dist.glob("privguard-*.whl")
    # the README's Install block: every extra it names exists in the wheel
    named = set()
    for line in block("install").commands():
        named.update(re.findall(r"privguard\[(\w+)\]", line))
    missing = named - _extras(wheel)
    assert not missing, f"README installs extras the wheel lacks: {missing}"
    root = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    install = subprocess.run(
        [str(root / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         f"{wheel}[flask,django,starlette]", *TOOLS],
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip
    if install.returncode != 0:
        unavailable("pip and the package index", install.stdout + install.stderr)
    work = base / "work"
    work.mkdir()
    print(f"wheel venv ready in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return Venv(root, work)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def serve(venv: Venv) -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def start(script: str, cwd: Path, port: int, path: str = "/") -> httpx.Response:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=cwd,
            env=venv.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{script!r} exited:\n{proc.stdout.read() if proc.stdout else ''}")
            try:
                return httpx.get(f"http://127.0.0.1:{port}{path}", headers=HTML, timeout=5)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{script!r} did not answer on port {port}")
                time.sleep(0.2)

    yield start
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        proc.wait(15)


def secret_script() -> str:
    return "\n".join(block(SECRET_BLOCK).commands())


def banner(response: httpx.Response) -> bool:
    return 'id="privguard-banner"' in response.text


# --- privguard demo ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["privguard", "python -m privguard"])
def test_demo_from_the_wheel(venv: Venv, serve: object, how: str) -> None:
    (install, command) = block("demo").commands()
    assert install == "pip install 'privguard[flask]'" and command == "privguard demo"
    port = free_port()
    where = venv.folder(f"demo-{how.split()[0]}-{port}")
    response = serve(f"exec {how} demo --port {port}", where, port)  # type: ignore[operator]
    assert response.status_code == 200
    assert 'id="demo-bar"' in response.text and banner(response)
    assert "Qomoor" in response.text or "tea" in response.text.lower()


# --- Flask quick start, its ledger and the CLI -----------------------------------------


@pytest.fixture(scope="session")
def flask_site(venv: Venv) -> Path:
    where = venv.folder("flask-shop")
    (where / "shop.py").write_text(block("quickstart: flask").body)
    return where


def test_flask_quickstart_with_flask_run(venv: Venv, serve: object, flask_site: Path) -> None:
    (run,) = block("run: flask").commands()
    port = free_port()
    script = f"{secret_script()}\nexec {run} --port {port}"
    response = serve(script, flask_site, port)  # type: ignore[operator]
    assert response.status_code == 200 and "Welcome" in response.text and banner(response)
    assert "shop_currency" not in response.headers.get("set-cookie", "")
    answer = httpx.post(
        f"http://127.0.0.1:{port}/privguard/consent",
        data={"accept": "all"},
        headers={**HTML, "Origin": f"http://127.0.0.1:{port}"},
    )
    assert answer.status_code == 303
    time.sleep(0.5)  # the receipt is written off the request path
    assert (flask_site / "privguard-ledger.db").exists()


def test_ledger_stats_with_the_default_file(venv: Venv, flask_site: Path, serve: object) -> None:
    if not (flask_site / "privguard-ledger.db").exists():
        test_flask_quickstart_with_flask_run(venv, serve, flask_site)
    proc = venv.run("privguard ledger stats", flask_site)
    assert proc.returncode == 0, proc.stderr
    assert "privguard ledger: sqlite:///privguard-ledger.db (the default" in proc.stderr
    assert re.search(r"\d{4}-\d{2}\s+\S+\s+marketing\s+1", proc.stdout), proc.stdout


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cookies_inventory_leaves_the_ledger_untouched(
    venv: Venv, flask_site: Path, serve: object
) -> None:
    if not (flask_site / "privguard-ledger.db").exists():
        test_flask_quickstart_with_flask_run(venv, serve, flask_site)
    ledger = flask_site / "privguard-ledger.db"
    before = _digest(ledger)
    proc = venv.run(f"{secret_script()}\nprivguard cookies shop:app", flask_site)
    assert proc.returncode == 0, proc.stderr
    assert "`shop_currency` | functionality" in proc.stdout
    assert _digest(ledger) == before


def test_audit_fails_on_a_region_the_app_cannot_see(venv: Venv, flask_site: Path) -> None:
    # the quick start reads no country header: every visitor is unknown to it
    proc = venv.run(f"{secret_script()}\nprivguard audit shop:app --region US", flask_site)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "US: region not simulated -- the app saw country None, not 'US'" in proc.stdout
    assert "Fix:" in proc.stdout


# --- FastAPI under uvicorn -----------------------------------------------------------


def test_fastapi_quickstart_under_uvicorn(venv: Venv, serve: object) -> None:
    where = venv.folder("fastapi-shop")
    (where / "shop.py").write_text(block("quickstart: fastapi").body)
    (run,) = block("run: fastapi").commands()
    port = free_port()
    response = serve(f"{secret_script()}\nexec {run} --port {port}", where, port)  # type: ignore[operator]
    assert response.status_code == 200
    assert "Welcome (gdpr)" in response.text and banner(response)
    state = httpx.get(f"http://127.0.0.1:{port}/privguard/consent").json()
    assert state["needs_banner"] is True


# --- Django, set up exactly as the README says ------------------------------------------


def test_django_startproject_site(venv: Venv, serve: object) -> None:
    where = venv.folder("django")
    lines = block("django: startproject").commands()
    assert lines[0] == "pip install 'privguard[django]'"  # installed with the venv
    proc = venv.run("\n".join(lines[1:2]), where)
    assert proc.returncode == 0, proc.stderr
    site = where / "mysite"
    for name in ("mysite/settings.py", "mysite/urls.py"):
        target = site / name
        target.write_text(target.read_text() + "\n" + block(f"django: {name}").body)
    check, runserver = block("django: run").commands()
    proc = venv.run(check, site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues" in proc.stdout + proc.stderr
    port = free_port()
    response = serve(  # type: ignore[operator]
        f"exec {runserver} --noreload 127.0.0.1:{port}", site, port, "/admin/login/"
    )
    assert response.status_code == 200 and banner(response)
    assert "csrftoken" in response.headers.get("set-cookie", "")  # necessary: passes
    state = httpx.get(f"http://127.0.0.1:{port}/privguard/consent").json()
    assert state["regime"] == "gdpr"


# --- the QA kit sample ------------------------------------------------------------------


def test_qa_kit_sample_from_the_wheel(venv: Venv) -> None:
    where = venv.folder("qa")
    for name in ("myshop.py", "conftest.py", "test_privacy.py"):
        (where / name).write_text(block(f"file: {name}").body)
    (command,) = block("qa: pytest").commands()
    proc = venv.run(f"{secret_script()}\n{command} -p no:cacheprovider", where, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "5 passed" in proc.stdout


def test_the_installed_package_is_not_the_checkout(venv: Venv) -> None:
    proc = venv.run(
        "python -c 'import privguard, json; print(json.dumps(privguard.__file__))'", venv.work
    )
    where = Path(json.loads(proc.stdout))
    assert venv.root in where.parents and ROOT not in where.parents


def test_the_wheel_runs_the_c_accelerator(venv: Venv) -> None:
    """The wheel carries the quick pass's C loop (built by hatch_build.py) and uses it."""
    script = (
        "from privguard.core import _quickscan, response\n"
        "assert response._scan is _quickscan.scan, response._scan\n"
        "print(_quickscan.__file__)\n"
    )
    proc = venv.run(f"python -c '{script}'", venv.work)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert venv.root in Path(proc.stdout.strip()).parents
