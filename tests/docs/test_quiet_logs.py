"""Issue #20 item 7: quiet, useful logs for someone running the app the first time.

Each runs the real thing in a subprocess with nothing configured (as `make run`):
base settings, no broker, no Redis.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging
import django
django.setup()
from inventory_site.celery import app

@app.task(name="quiet_logs_probe")
def probe():
    logging.getLogger("inventory.probe").info("probe ran")
    return 1

probe.apply_async(retry=True)
logging.getLogger("django.request").warning("Not Found: /probe")
logging.getLogger("inventory.probe").warning("a stockroom warning")
"""


def embedded_env(**extra) -> dict:
    unset = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "LOG_FORMAT")
    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(PYTHONPATH=str(ROOT), DJANGO_SETTINGS_MODULE="inventory_site.settings.base",
               DATABASE_URL="sqlite://:memory:", PYTHONWARNINGS="default", **extra)  # fmt: skip
    return env


def test_each_line_once_and_no_broker_warning_without_a_broker():
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=embedded_env(),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    log = done.stderr
    assert log.count("Not Found: /probe") == 1, log
    assert log.count("a stockroom warning") == 1, log
    assert log.count("probe ran") == 1, log  # the task ran inline
    assert "No hostname was supplied" not in log, log
    assert "kombu" not in log, log


def test_the_migrations_check_of_make_test_warns_about_no_database():
    """The Makefile's `test` target checks migrations without any database to reach."""
    makefile = (ROOT / "Makefile").read_text()
    [command] = [line.strip() for line in makefile.splitlines() if "makemigrations" in line]
    command = command.replace("$(BIN)/python", sys.executable)
    env = embedded_env()
    del env["DATABASE_URL"], env["DJANGO_SETTINGS_MODULE"]  # the command line sets them
    env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/no-such-database"  # as a user's
    done = subprocess.run(command, shell=True, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No changes detected" in done.stdout
    assert "Warning" not in done.stderr, done.stderr


def test_the_readme_configuration_table_is_one_table():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    rows = [i for i, line in enumerate(lines) if line.startswith("|")]
    assert rows == list(range(rows[0], rows[-1] + 1)), "a blank line breaks the table"
    variables = re.findall(r"^\| `([A-Z_]+)` \|", section, flags=re.M)
    base = (ROOT / "inventory_site/settings/base.py").read_text()
    assert "STOCKROOM_TRUSTED_PROXIES" in variables and "LOG_FORMAT" in variables
    for name in variables:
        assert name in base or name == "DJANGO_SETTINGS_MODULE", name
