"""A live Stockroom for tests that talk to it over HTTP: gunicorn on loopback, a
database of its own seeded with the demo data (as `make run` seeds it) and a
private Redis (chaos.processes). Used by the generated-client contract test and the
schemathesis run of tests/api/test_schema.py."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings

from chaos import processes

ROOT = Path(__file__).resolve().parents[2]
SEED = [
    ["migrate", "--noinput", "-v", "0"],
    ["seed_demo", "--skus", "50", "--warehouses", "3", "--no-progress"],
]


@dataclass
class LiveApp:
    url: str
    env: dict[str, str]

    def manage(self, *args: str) -> str:
        return manage(self.env, *args)

    def api_key(self, name: str, *scopes: str) -> str:
        """A new API client's key (create_api_client prints it on its last line)."""
        flags = [arg for scope in scopes for arg in ("--scope", scope)]
        return self.manage("create_api_client", name, *flags).strip().splitlines()[-1]


def _admin():
    db = settings.DATABASES["default"]
    return psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
        password=db.get("PASSWORD") or None, dbname="postgres", autocommit=True,
    )  # fmt: skip


def manage(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                          check=True, capture_output=True, text=True, timeout=300)  # fmt: skip
    return done.stdout


@contextlib.contextmanager
def live_app(suffix: str, **env_extra: str) -> Iterator[LiveApp]:
    """gunicorn serving a fresh demo database `<test database>_<suffix>`."""
    db = settings.DATABASES["default"]
    name = f"{db['NAME'].removeprefix('test_')}_{suffix}"
    with _admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}"
    redis = processes.PrivateRedis()
    server = None
    try:
        redis.start()
        env = processes.app_env(url, redis.url, LOG_LEVEL="ERROR", **env_extra)
        env["PYTHONPATH"] = str(ROOT)
        for command in SEED:
            manage(env, *command)
        server = processes.Gunicorn(env, workers=2, threads=4)
        server.start()
        yield LiveApp(server.url, env)
    finally:
        if server is not None:
            server.stop()
        redis.close()
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
