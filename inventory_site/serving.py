"""The garbage collector of a serving process (gunicorn worker, ASGI server).

A Django process holds a few hundred thousand long-lived objects once the app
is loaded (modules, URL patterns, models, templates). CPython's collector
traverses every tracked object in a full (generation-2) collection, so a
request that happens to trigger one pauses for tens of milliseconds while
allocating nothing unusual (issue #16, item 5: the cold bundle-availability
p99). `gc.freeze()` moves everything alive at that point into a permanent
generation that collections never traverse; objects created afterwards are
collected as usual. Called once the app is loaded (`inventory_site/wsgi.py`,
`asgi.py`): with gunicorn's default (no `--preload`) each worker imports the
WSGI module after the fork, so each freezes its own heap; with `--preload` the
master freezes before forking, which also keeps the frozen pages shared.

`STOCKROOM_GC_FREEZE=false` turns it off (measurements: docs/PERFORMANCE.md,
"Bundles: availability of 100 SKUs…").
"""

from __future__ import annotations

import gc

from django.conf import settings
from django.urls import get_resolver


def tune_gc() -> None:
    """Freeze what is alive now (the loaded app) out of the collector's sight."""
    if not settings.STOCKROOM_GC_FREEZE:
        return
    # Django imports the URLconf (views, serializers, the API schema's modules)
    # on the first request: import it now, so it is frozen with the rest.
    get_resolver().url_patterns  # noqa: B018
    gc.collect()  # what is already garbage is not frozen with the rest
    gc.freeze()
