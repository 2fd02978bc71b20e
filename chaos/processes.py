"""Private processes for fault tests: a Redis on a free loopback port and gunicorn.

Nothing here touches the shared services on 127.0.0.1:6379/5672/5432 except
PostgreSQL through the database named in DATABASE_URL. Every process is started
by us, tracked by its pid, and stopped by that pid (never by name).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f}s")


class PrivateRedis:
    """A throwaway redis-server on a free loopback port: no persistence, own pidfile."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="stockroom-chaos-redis-"))
        self.pidfile = self.dir / "redis.pid"
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def _cli(self, *args: str, timeout: float = 5) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> bool:
        try:
            return self._cli("ping", timeout=2).stdout.strip() == "PONG"
        except subprocess.TimeoutExpired:
            return False

    def start(self) -> None:
        subprocess.run(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.pidfile),
                "--dir",
                str(self.dir),
                "--logfile",
                str(self.dir / "redis.log"),
            ],
            check=True,
            timeout=10,
        )
        _wait(self.up, 10, f"private redis on port {self.port}")

    def pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop this instance (by its own pid) and wait until it is gone."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _wait(lambda: not self.up(), 10, "private redis shutdown")
        self.pidfile.unlink(missing_ok=True)

    def flush(self) -> None:
        self._cli("flushall")

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def _children(pid: int) -> list[int]:
    """Direct children of `pid` (read from /proc: no matching by process name)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry.name))
    return out


class Gunicorn:
    """gunicorn serving the app on a free loopback port with its own environment."""

    def __init__(self, env: dict[str, str], workers: int = 3, threads: int = 4) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.workers = workers
        self.threads = threads
        self.proc: subprocess.Popen | None = None
        # Kept open for the life of the server (its stdout); closed with the object.
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115
            prefix="stockroom-chaos-gunicorn-", suffix=".log"
        )

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                str(VENV_BIN / "gunicorn"),
                "inventory_site.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.workers),
                "--threads",
                str(self.threads),
                "--timeout",
                "30",
                "--graceful-timeout",
                "3",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

        def answering() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_tail()}")
            try:
                return requests.get(self.url + "/health/live", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        _wait(answering, 30, "gunicorn")

    def worker_pids(self) -> list[int]:
        return _children(self.proc.pid) if self.proc else []

    def kill_worker(self, rng) -> int | None:
        """SIGKILL one worker (gunicorn's master starts a new one)."""
        pids = self.worker_pids()
        if not pids:
            return None
        pid = rng.choice(sorted(pids))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return None
        return pid

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return Path(self.log.name).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            for pid in self.worker_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait(timeout=10)


def app_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    """The environment for an app process of a run: its own database and cache."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE", "REDIS_", "CELERY_", "STOCKROOM_", "DB_"))
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "inventory_site.settings.base",
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DB_CONN_MAX_AGE": "60",
            "DB_LOCK_TIMEOUT_MS": "2000",
            "STOCKROOM_API_THROTTLE_RATE": "10000000/min",
            # A request whose worker was killed leaves its Idempotency-Key running;
            # let the end-of-run retries take it over quickly.
            "STOCKROOM_IDEMPOTENCY_STALE_SECONDS": "2",
            "LOG_LEVEL": "WARNING",
            "CACHE_KEY_PREFIX": "chaos",
        }
    )
    env.update(extra)
    return env
