"""WSGI entry point (gunicorn inventory_site.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

from inventory_site.serving import tune_gc

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inventory_site.settings.base")
application = get_wsgi_application()

# The app is loaded: keep it out of the garbage collector's way (serving.py).
tune_gc()
