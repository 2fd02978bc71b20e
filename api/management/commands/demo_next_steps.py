"""`manage.py demo_next_steps`: what to try next, printed by `make run` before it serves.

The URLs, the demo login, the documented demo SKUs, and a first API call with a
storefront key created just now (a new client `make-run-<time>` each run; the key
is shown only here). DEBUG only, like `demo_admin`.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from api.services import api_client_create
from backoffice.management.commands.demo_admin import DEMO_PASSWORD, DEMO_STAFF, DEMO_USERNAME
from inventory.demo import SHOWCASE, demo_sku
from inventory.models import Product
from warehouses.models import Warehouse


class Command(BaseCommand):
    help = "Print what to try next (URLs, demo login, a first curl with a fresh key); DEBUG only."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="http://127.0.0.1:8000")

    def handle(self, *args, base_url, **options):
        if not settings.DEBUG:
            raise CommandError("demo_next_steps only runs with DEBUG on (the embedded default).")
        base = base_url.rstrip("/")
        name = f"make-run-{timezone.now():%Y%m%d-%H%M%S-%f}"
        _, key = api_client_create(name=name, scopes=["storefront"])
        skus = Product.objects.filter(sku__startswith="DEMO-").order_by("sku")
        first, last = skus.first(), skus.last()
        codes = ", ".join(Warehouse.objects.order_by("code").values_list("code", flat=True)[:10])
        staff = ", ".join(DEMO_STAFF)
        showcase = ", ".join(f"{demo_sku(n)} ({item.name})" for n, item in enumerate(SHOWCASE[:3]))
        lines = [
            "",
            "What to try next",
            f"  Front door   {base}/",
            f"  Back office  {base}/admin/  user {DEMO_USERNAME} / {DEMO_PASSWORD} "
            f"(also {staff}, same password)",
            f"  API docs     {base}/api/docs/  (schema {base}/api/schema/, guide docs/API.md)",
            f"  Health       {base}/health/ready",
            "  Demo data    "
            + (f"SKUs {first.sku} … {last.sku}, warehouses {codes}" if first else "none yet"),
            f"               e.g. {showcase}",
            f"  A first API call, with a storefront key made just now (client {name}):",
            f"    KEY={key}",
            f'    curl -s -H "Authorization: Token $KEY" {base}/api/v1/availability/DEMO-000000/',
            "",
        ]
        self.stdout.write("\n".join(lines))
