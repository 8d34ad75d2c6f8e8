"""Real app servers for tests: uvicorn or gunicorn subprocesses on free localhost ports.

``AppServer(cwd, module_source, args)`` writes the app module into ``cwd``,
starts the server there (so a PostgreSQL ledger's default spool file lands in
``cwd`` and every process started there shares it), waits until
``/privguard/consent`` answers, and stops it with SIGTERM (``stop``) or leaves
that to the caller (``terminate`` returns without waiting).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

__all__ = ["AppServer", "free_port"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class AppServer:
    def __init__(
        self,
        cwd: Path,
        module: str,
        *,
        server: str = "uvicorn",
        workers: int = 1,
        name: str = "server",
        extra: tuple[str, ...] = (),
    ) -> None:
        self.cwd = cwd
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log_path = cwd / f"{name}-{self.port}.log"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(cwd), *sys.path])}
        if server == "uvicorn":
            args = [
                sys.executable,
                "-m",
                "uvicorn",
                module,
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--workers",
                str(workers),
                *extra,
            ]
        else:
            args = [
                sys.executable,
                "-m",
                "gunicorn",
                module,
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                *extra,
            ]
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 30.0) -> AppServer:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx.get(self.base + "/privguard/consent", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start within {timeout:.0f}s: {self.log()}")
            time.sleep(0.1)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def terminate(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise

    def stop(self, timeout: float = 30.0) -> None:
        try:
            self.terminate()
            if self.proc.poll() is None:
                self.wait(timeout)
        finally:
            self._log.close()
