"""Demo suppliers for the demo catalogue, and a first reorder pass.

`python manage.py seed_demo_suppliers` (after `seed_demo`; `make run` calls both).
Idempotent: suppliers are matched by name, products that already have a supplier
keep it, and the reorder pass orders only rows no open line covers yet.
"""

from django.core.management.base import BaseCommand

from inventory.models import Product
from purchasing import services
from purchasing.models import ProductSupplier, Supplier

SUPPLIERS = [
    # name, lead time min/max days, pack sizes cycled over the products
    ("Nordwind Textil GmbH", 2, 4),
    ("Rheinland Haushaltswaren AG", 3, 5),
    ("Alpen Outdoor & Spiel KG", 5, 9),
]
PACK_SIZES = [1, 6, 12]


class Command(BaseCommand):
    help = "Create demo suppliers, link DEMO- products to them, and run the reorder batch once."

    def handle(self, *args, **options):
        suppliers = [
            Supplier.objects.get_or_create(
                name=name,
                defaults={
                    "lead_time_min_days": low,
                    "lead_time_max_days": high,
                    "contact_name": "Demo contact",
                    "email": "orders@example.com",
                },
            )[0]
            for name, low, high in SUPPLIERS
        ]
        products = Product.objects.filter(sku__startswith="DEMO-", supplier_links__isnull=True)
        links = [
            ProductSupplier(
                product=product,
                supplier=suppliers[n % len(suppliers)],
                supplier_sku=f"S{n % len(suppliers)}-{product.sku}",
                pack_size=PACK_SIZES[n % len(PACK_SIZES)],
                is_preferred=True,
            )
            for n, product in enumerate(products.order_by("sku"))
        ]
        ProductSupplier.objects.bulk_create(links, ignore_conflicts=True)
        result = services.reorder_batch()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo suppliers ready: {len(suppliers)} suppliers, "
                f"{len(links)} new product links, "
                f"{result.lines_created} reorder lines on {result.orders_created} new draft POs."
            )
        )
