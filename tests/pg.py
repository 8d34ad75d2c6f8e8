"""A throwaway PostgreSQL cluster for tests and benchmarks.

``PgCluster.start()`` runs ``initdb`` into a temporary directory and starts
``postgres`` on a free localhost port (sockets in the same directory);
``stop()``/``restart()`` drive ``pg_ctl`` so tests can simulate an outage, and
``destroy()`` removes everything. Running as root (containers, CI), every
server binary runs as the ``postgres`` system user through ``runuser``, as
``initdb`` refuses root. No state lives in this module: callers keep the
instance (the pytest fixture in ``tests/ledger/conftest.py`` keeps one per session).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PgCluster", "PgUnavailable", "find_bindir"]

SERVER_USER = "postgres"
FALLBACK_USER = "privguard-pg"


class PgUnavailable(RuntimeError):
    """PostgreSQL binaries are missing or the cluster would not start."""


def find_bindir() -> Path:
    """The directory holding ``initdb``/``pg_ctl`` (``pg_config --bindir`` first)."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        out = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True, timeout=10
        )
        candidates.append(out.stdout.strip())
    candidates.extend(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").is_file():
            return Path(candidate)
    raise PgUnavailable("PostgreSQL server binaries (initdb, pg_ctl) not found")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class PgCluster:
    """One temporary cluster; ``url`` is a superuser URL to its ``postgres`` database."""

    bindir: Path = field(default_factory=find_bindir)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="privguard-pg-")))
    port: int = field(default_factory=_free_port)
    fsync: bool = False  # tests trade durability for speed; benchmarks turn it on
    running: bool = False

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _server_user(self) -> str:
        """The account the server runs as when we are root (created if need be)."""
        for name in (SERVER_USER, FALLBACK_USER):
            if _has_user(name):
                return name
        proc = subprocess.run(
            [
                "useradd",
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                FALLBACK_USER,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise PgUnavailable(f"cannot create a user to run PostgreSQL: {proc.stderr.strip()}")
        return FALLBACK_USER

    def _as_server_user(self, args: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return args
        return ["runuser", "-u", self._server_user(), "--", *args]

    def _run(self, args: list[str], timeout: float = 60) -> None:
        proc = subprocess.run(
            self._as_server_user(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.root,
            check=False,
        )
        if proc.returncode != 0:
            log = ""
            with contextlib.suppress(OSError):
                log = (self.root / "server.log").read_text()[-2000:]
            raise PgUnavailable(
                f"{' '.join(args[:2])} failed ({proc.returncode}): "
                f"{proc.stderr.strip() or proc.stdout.strip()}\n{log}"
            )

    def start(self) -> PgCluster:
        """Create the cluster (first time) and start the server; returns ``self``."""
        if os.geteuid() == 0:
            pw = pwd.getpwnam(self._server_user())
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        os.chmod(self.root, 0o700)
        if not (self.datadir / "PG_VERSION").exists():
            self._run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.datadir),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "-E",
                    "UTF8",
                    "--no-sync",
                    "--no-instructions",
                ],
                timeout=120,
            )
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=100"
        )
        if not self.fsync:
            options += " -c fsync=off -c full_page_writes=off"
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.datadir),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            ],
            timeout=90,
        )
        self.running = True
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: open connections are cut)."""
        if self.running:
            self._run(
                [str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop"]
            )
            self.running = False

    def restart(self) -> None:
        """Start the server again on the same port after :meth:`stop`."""
        self.start()

    def destroy(self) -> None:
        """Stop the server and delete the cluster."""
        with contextlib.suppress(PgUnavailable, subprocess.TimeoutExpired):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.destroy()


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
