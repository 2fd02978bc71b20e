"""Create a small, realistic demo catalogue through the service layer.

`python manage.py seed_demo --skus 50 --warehouses 3`. Idempotent: SKUs and
warehouses that already exist are left alone, and stock is received under a
fixed import reference, so running it twice adds nothing.
"""

import random

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from inventory import services
from inventory.actors import SYSTEM_COMMAND
from inventory.models import Inventory, Product, StockPolicy
from inventory.services import Reference
from warehouses.models import Warehouse

CITIES = [
    ("BER", "Berlin", 52.520008, 13.404954),
    ("HAM", "Hamburg", 53.551086, 9.993682),
    ("MUC", "Munich", 48.135124, 11.581981),
    ("CGN", "Cologne", 50.937531, 6.960279),
    ("FRA", "Frankfurt", 50.110924, 8.682127),
    ("LEJ", "Leipzig", 51.339695, 12.373075),
    ("STR", "Stuttgart", 48.775845, 9.182932),
    ("DUS", "Düsseldorf", 51.227741, 6.773456),
    ("DRS", "Dresden", 51.050409, 13.737262),
    ("NUE", "Nuremberg", 49.452102, 11.076665),
]
CATEGORIES = ["apparel", "footwear", "kitchen", "garden", "toys", "electronics", "books"]
NOUNS = ["T-shirt", "Sneaker", "Mug", "Trowel", "Puzzle", "Headphones", "Notebook", "Lamp"]
ADJECTIVES = ["Classic", "Eco", "Pro", "Mini", "Deluxe", "Urban", "Retro", "Smart"]


class Command(BaseCommand):
    help = "Create demo warehouses, products and stock (small scale, through the services)."

    def add_arguments(self, parser):
        parser.add_argument("--skus", type=int, default=50)
        parser.add_argument("--warehouses", type=int, default=3)
        parser.add_argument("--seed", type=int, default=42)

    def handle(self, *args, skus, warehouses, seed, **options):
        if not 1 <= warehouses <= len(CITIES):
            raise CommandError(f"--warehouses must be between 1 and {len(CITIES)}")
        if skus < 1:
            raise CommandError("--skus must be at least 1")
        rng = random.Random(seed)
        sites = []
        for code, city, lat, lon in CITIES[:warehouses]:
            site, _ = Warehouse.objects.get_or_create(
                code=code,
                defaults={
                    "name": f"{city} fulfilment centre",
                    "address": f"{city}, Germany",
                    "latitude": lat,
                    "longitude": lon,
                    "capacity": 500_000,
                },
            )
            sites.append(site)
        created = 0
        for n in range(skus):
            category = CATEGORIES[n % len(CATEGORIES)]
            policy = StockPolicy.NORMAL
            if n % 17 == 5:
                policy = StockPolicy.BACKORDER
            elif n % 29 == 7:
                policy = StockPolicy.PREORDER
            product, was_created = Product.objects.get_or_create(
                sku=f"DEMO-{n:06d}",
                defaults={
                    "name": f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {n}",
                    "category": category,
                    "weight_g": rng.randint(50, 5000),
                    "length_mm": rng.randint(50, 600),
                    "width_mm": rng.randint(50, 400),
                    "height_mm": rng.randint(10, 300),
                    "stock_policy": policy,
                    "backorder_limit": 0 if policy == StockPolicy.NORMAL else 20,
                },
            )
            created += was_created
            for site in sites:
                quantity = rng.choice([0, 0, 3, 8, 15, 40, 120])
                if quantity:
                    services.stock_receive(
                        sku=product.sku,
                        warehouse=site.code,
                        quantity=quantity,
                        actor=SYSTEM_COMMAND,
                        reference=Reference("import", "seed-demo"),
                        reason="demo data",
                    )
        with transaction.atomic():
            Inventory.objects.filter(product__sku__startswith="DEMO-").update(
                reorder_threshold=10, reorder_quantity=50
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {len(sites)} warehouses, {skus} SKUs ({created} new)."
            )
        )
