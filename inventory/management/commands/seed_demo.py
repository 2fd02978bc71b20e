"""seed_demo --skus N --warehouses M: a realistic demo catalogue with opening stock.

A thin wrapper over `inventory.demo.demo_catalogue_seed` (set-based on
PostgreSQL: 1,000,000 SKUs x 10 warehouses in minutes; see docs/BULK.md).
Idempotent: existing SKUs, warehouses and stock rows are left alone.
"""

from django.core.management.base import BaseCommand, CommandError

from inventory import errors
from inventory.demo import MAX_WAREHOUSES, demo_catalogue_seed
from inventory.management.progress import progress_for


class Command(BaseCommand):
    help = "Create demo warehouses, products and opening stock (on the ledger); idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--skus", type=int, default=50)
        parser.add_argument("--warehouses", type=int, default=3, help=f"1 to {MAX_WAREHOUSES}")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, skus, warehouses, seed, no_progress, **options):
        try:
            result = demo_catalogue_seed(
                skus=skus,
                warehouses=warehouses,
                seed=seed,
                progress=progress_for(enabled=not no_progress),
            )
        except errors.InventoryError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data ready: {warehouses} warehouses ({result.new_warehouses} new), "
                f"{skus} SKUs ({result.new_products} new), "
                f"{result.new_inventory_rows} new stock rows, {result.ledger_rows} ledger rows."
            )
        )
