"""Demo suppliers for the demo catalogue, and a first reorder pass.

`python manage.py seed_demo_suppliers` (after `seed_demo`; `make run` calls both).
Idempotent: suppliers are matched by name, products that already have a supplier
keep it, and the reorder pass orders only rows no open line covers yet.

Each product gets the supplier of its category. On a fresh database the
documented low-stock SKU (DEMO-000003, the garden trowel, 3 in BER) is reordered
first, so its draft is PO-000001: docs/API.md's purchase-order example receives it.
"""

from django.core.management.base import BaseCommand

from inventory.models import Inventory, Product
from purchasing import services
from purchasing.models import ProductSupplier, Supplier

SUPPLIERS = [
    # name, lead time min/max days, the demo categories it supplies
    ("Nordwind Textil GmbH", 2, 4, {"apparel", "footwear"}),
    ("Rheinland Haushaltswaren AG", 3, 5, {"kitchen", "electronics", "books"}),
    ("Alpen Outdoor & Spiel KG", 5, 9, {"garden", "toys"}),
]
FIRST_REORDER = ("DEMO-000003", "BER")  # -> PO-000001 on a fresh database (docs/API.md)
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
            for name, low, high, _ in SUPPLIERS
        ]
        by_category = {
            category: supplier
            for supplier, (*_, categories) in zip(suppliers, SUPPLIERS, strict=True)
            for category in categories
        }
        products = Product.objects.filter(sku__startswith="DEMO-", supplier_links__isnull=True)
        links = [
            ProductSupplier(
                product=product,
                supplier=(supplier := by_category.get(product.category, suppliers[n % 3])),
                supplier_sku=f"S{suppliers.index(supplier)}-{product.sku}",
                pack_size=PACK_SIZES[n % len(PACK_SIZES)],
                is_preferred=True,
            )
            for n, product in enumerate(products.order_by("sku"))
        ]
        ProductSupplier.objects.bulk_create(links, ignore_conflicts=True)
        first = Inventory.objects.filter(
            product__sku=FIRST_REORDER[0], warehouse__code=FIRST_REORDER[1]
        ).first()
        if first is not None:
            services.reorder_check(inventory_id=first.pk)
        result = services.reorder_batch()
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo suppliers ready: {len(suppliers)} suppliers, "
                f"{len(links)} new product links, "
                f"{result.lines_created} reorder lines on {result.orders_created} new draft POs."
            )
        )
