"""Web processes freeze the loaded app out of the garbage collector
(`inventory_site/serving.py`): `wsgi.py` does it once the app and its URLconf
are loaded, unless STOCKROOM_GC_FREEZE is false."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

PROBE = (
    "import gc, inventory_site.wsgi, sys; print(gc.get_freeze_count(), 'api.urls' in sys.modules)"
)


def frozen(**env: str) -> tuple[int, bool]:
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "inventory_site.settings.base", **env}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=environ,
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    count, urls = out.stdout.split()
    return int(count), urls == "True"


@pytest.mark.parametrize(("value", "expected"), [("true", True), ("false", False)])
def test_the_wsgi_app_is_frozen_with_its_urlconf_unless_turned_off(value, expected):
    count, urls_loaded = frozen(STOCKROOM_GC_FREEZE=value)
    assert (count > 0, urls_loaded) == (expected, expected)
