"""STOCKROOM_AVAILABILITY_KEY_PREFIX is read from the environment variable of the
same name; CACHE_KEY_PREFIX, its older name, still works when it is unset. One
value prefixes every Redis key (the Django cache's and the read model's)."""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

PROBE = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.STOCKROOM_AVAILABILITY_KEY_PREFIX, s.CACHES['default']['KEY_PREFIX']]))"
)


def prefixes(**env: str) -> list[str]:
    environ = {
        k: v
        for k, v in os.environ.items()
        if k not in {"STOCKROOM_AVAILABILITY_KEY_PREFIX", "CACHE_KEY_PREFIX"}
    }
    environ.update(env, DJANGO_SETTINGS_MODULE="inventory_site.settings.base")
    environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")  # no connection is made
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environ,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "stockroom"),
        ({"STOCKROOM_AVAILABILITY_KEY_PREFIX": "shop1"}, "shop1"),
        ({"CACHE_KEY_PREFIX": "legacy"}, "legacy"),
        ({"STOCKROOM_AVAILABILITY_KEY_PREFIX": "shop1", "CACHE_KEY_PREFIX": "legacy"}, "shop1"),
    ],
)
def test_the_key_prefix_setting_and_its_environment_variable_share_one_name(env, expected):
    assert prefixes(**env) == [expected, expected]
