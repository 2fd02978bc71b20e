"""`make run` on the embedded default: SQLite, no Redis, no broker.

The suite itself runs on PostgreSQL; this runs the real first-run steps in a
subprocess on a fresh SQLite file (migrate, the demo seeds, roles, demo users)
and then the storefront's and the back office's first calls, so a migration or
a query that only PostgreSQL understands cannot break the first hour unseen.
"""

import subprocess
import sys

from .test_quiet_logs import ROOT, embedded_env

SMOKE = """
import django
django.setup()
from django.contrib.auth import get_user_model
from django.test import Client
from api.services import api_client_create

_, key = api_client_create(name="embedded", scopes=["storefront", "operations"])
api = Client(HTTP_AUTHORIZATION="Token " + key)
answers = [
    api.get("/api/v1/availability/DEMO-000000/").status_code,
    api.get("/api/v1/availability/?sku=DEMO-000000&sku=DEMO-000002").status_code,
    api.post("/api/v1/reservations/", {"order_id": "E-1", "expires_in": 60,
             "lines": [{"sku": "DEMO-000000", "quantity": 1}]},
             content_type="application/json").status_code,
    api.post("/api/v1/reservations/E-1/confirm/", {}, content_type="application/json").status_code,
    api.post("/api/v1/reservations/E-1/fulfill/", {}, content_type="application/json").status_code,
    api.post("/api/v1/reservations/E-1/fulfill/", {}, content_type="application/json").status_code,
    api.get("/api/v1/events/").status_code,
]
staff = Client()
staff.force_login(get_user_model().objects.get(username="manager"))
answers += [staff.get(url).status_code for url in
            ("/", "/admin/", "/admin/inventory/inventory/?q=demo")]
print("ANSWERS", answers)
"""


def test_make_run_steps_and_first_calls_work_on_sqlite(tmp_path):
    env = embedded_env()
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'stockroom.sqlite3'}"

    def manage(*args):
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=300)  # fmt: skip
        assert done.returncode == 0, (args, done.stderr[-3000:])

    manage("migrate", "--noinput")
    manage("seed_demo", "--skus", "50", "--warehouses", "3")
    manage("seed_demo_suppliers")
    manage("setup_roles")
    manage("demo_admin")
    done = subprocess.run([sys.executable, "-c", SMOKE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("ANSWERS")]
    assert line == "ANSWERS [200, 200, 201, 200, 200, 409, 200, 200, 200, 200]", line
