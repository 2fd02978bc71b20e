"""Issue #20 item 2: the docs' examples run, in order, against the demo data.

Every ```sh block of README.md and docs/API.md that calls `curl` or creates an
API client is run, top to bottom, by bash against gunicorn on loopback (with a
private Redis), on a database of its own seeded exactly as `make run` seeds it
(seed_demo --skus 50 --warehouses 3, seed_demo_suppliers, setup_roles,
demo_admin). The blocks create their keys themselves (`.venv/bin/python
manage.py create_api_client …` is this interpreter, on that database); only the
server's address replaces http://127.0.0.1:8000. Each call's status (and, where
given, its error code) must be what the `<!-- expect: … -->` comment under the
block says, one entry per call: `<!-- expect: 200, 409 order_closed -->`. A block
without the comment must answer 2xx to every call.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from chaos import processes

ROOT = Path(__file__).resolve().parents[2]
DOCS = ["README.md", "docs/API.md"]
DOC_BASE_URL = "http://127.0.0.1:8000"
MAKE_RUN_SEED = [
    ["migrate", "--noinput", "-v", "0"],
    ["seed_demo", "--skus", "50", "--warehouses", "3", "--no-progress"],
    ["seed_demo_suppliers"],
    ["setup_roles"],
    ["demo_admin"],
]
# Blocks documenting the contract of issue #13 (a whole-order fulfil or release of
# an order that holds nothing is 409 order_closed): until that work is merged they
# answer 200, and only they may differ.
UNTIL_13 = {"order_closed"}

FENCE = re.compile(r"```sh\n(.*?)```\n(?:\s*<!-- expect: (.*?) -->)?", re.S)


@dataclass
class Block:
    doc: str
    line: int
    script: str
    expected: list[tuple[int, str | None]] | None

    @property
    def calls(self) -> int:
        return len(re.findall(r"^\s*curl\b", self.script, flags=re.M))


def doc_blocks() -> list[Block]:
    blocks = []
    for doc in DOCS:
        text = (ROOT / doc).read_text()
        for match in FENCE.finditer(text):
            script = match.group(1)
            if not re.search(r"^\s*curl\b|create_api_client", script, flags=re.M):
                continue  # make run, docker compose, celery ...: not API examples
            expected = None
            if match.group(2):
                expected = []
                for item in match.group(2).split(","):
                    status, _, code = item.strip().partition(" ")
                    expected.append((int(status), code or None))
            line = text.count("\n", 0, match.start()) + 1
            blocks.append(Block(doc, line, script, expected))
    return blocks


def test_every_example_block_states_one_expectation_per_call():
    blocks = doc_blocks()
    assert sum(b.calls for b in blocks) >= 30
    for block in blocks:
        if block.expected is not None:
            assert len(block.expected) == block.calls, (block.doc, block.line)


def _docs_database_url() -> tuple[str, str]:
    db = settings.DATABASES["default"]
    name = f"{db['NAME'].removeprefix('test_')}_docs_run"
    admin = psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
        password=db.get("PASSWORD") or None, dbname="postgres", autocommit=True,
    )  # fmt: skip
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{name}", name


def _drop(name: str) -> None:
    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
        password=db.get("PASSWORD") or None, dbname="postgres", autocommit=True,
    ) as admin:  # fmt: skip
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


PRELUDE = """
calls=0
curl() {
  calls=$((calls + 1))
  local code
  code=$(command curl -sS -o "$OUT/body.$calls" -w '%{http_code}' "$@") || code=000
  echo "$block $calls $code" >> "$OUT/calls"
}
"""


@pytest.mark.slow
def test_the_docs_examples_run_against_the_demo_data(tmp_path):
    blocks = doc_blocks()
    url, name = _docs_database_url()
    redis = processes.PrivateRedis()
    server = None
    try:
        redis.start()
        env = processes.app_env(url, redis.url, DJANGO_DEBUG="true", LOG_LEVEL="ERROR")
        env["PYTHONPATH"] = str(ROOT)
        for command in MAKE_RUN_SEED:
            subprocess.run([sys.executable, "manage.py", *command], cwd=ROOT, env=env,
                           check=True, capture_output=True, timeout=300)  # fmt: skip
        server = processes.Gunicorn(env, workers=2, threads=4)
        server.start()

        # The docs' working directory: `.venv/bin/python manage.py …` as after `make run`.
        workdir = tmp_path / "checkout"
        (workdir / ".venv" / "bin").mkdir(parents=True)
        python = workdir / ".venv" / "bin" / "python"
        python.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
        python.chmod(0o755)
        (workdir / "manage.py").symlink_to(ROOT / "manage.py")
        out = tmp_path / "out"
        out.mkdir()
        script = [PRELUDE]
        for index, block in enumerate(blocks):
            script.append(f"block={index}\n" + block.script.replace(DOC_BASE_URL, server.url))
        (tmp_path / "docs.sh").write_text("\n".join(script))
        done = subprocess.run(["bash", str(tmp_path / "docs.sh")], cwd=workdir,
                              env={**env, "OUT": str(out)}, capture_output=True, text=True,
                              timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr

        answers: dict[int, list[tuple[int, dict | None]]] = {}
        for line in (out / "calls").read_text().splitlines():
            block, call, status = map(int, line.split())
            raw = (out / f"body.{call}").read_text() if (out / f"body.{call}").exists() else ""
            try:
                body = json.loads(raw)
            except ValueError:
                body = None
            answers.setdefault(block, []).append((status, body))
    finally:
        if server is not None:
            server.stop()
        redis.close()
        _drop(name)

    mismatches = []
    for index, block in enumerate(blocks):
        got = answers.get(index, [])
        assert len(got) == block.calls, (block.doc, block.line, got)
        expected = block.expected or [(None, None)] * block.calls
        for (status, body), (want, code) in zip(got, expected, strict=True):
            error = (body or {}).get("error", {}).get("code") if isinstance(body, dict) else None
            ok = 200 <= status < 300 if want is None else status == want and code in (None, error)
            if not ok:
                mismatches.append((block.doc, block.line, want, code, status, body))
    if mismatches and all(code in UNTIL_13 for *_, code, _, _ in mismatches):
        pytest.xfail(f"until #13 merges (order_closed): {mismatches}")
    assert mismatches == []
