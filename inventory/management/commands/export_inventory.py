"""export_inventory: stream inventory as CSV (sku,warehouse,quantity,...), bulk_receive's format.

A thin wrapper over `inventory.services.inventory_export_csv`. `quantity` is on
hand; with --skip-zero the file loads as is with bulk_receive (quantities must be
at least 1), and serves as a cycle-count sheet. See docs/BULK.md.
"""

import sys

from django.core.management.base import BaseCommand, CommandError

from inventory import errors, services
from inventory_site.db_router import read_alias, replica_reads


class Command(BaseCommand):
    help = "Export inventory as CSV (streamed): sku,warehouse,quantity,reserved,available,..."

    def add_arguments(self, parser):
        parser.add_argument("--output", "-o", default="-", help="file to write (default stdout)")
        parser.add_argument("--warehouse", help="only this warehouse code")
        parser.add_argument(
            "--skip-zero", action="store_true", help="leave out rows with 0 on hand"
        )

    def handle(self, *args, output, warehouse, skip_zero, **options):
        # From the streaming replica when one is configured and fresh enough (chosen
        # once: a stream half written cannot switch servers), else the primary.
        with replica_reads():
            using = read_alias()
        try:
            if output == "-":
                rows = services.inventory_export_csv(
                    out=sys.stdout.buffer, warehouse=warehouse, skip_zero=skip_zero, using=using
                )
                sys.stdout.buffer.flush()
            else:
                with open(output, "wb") as handle:
                    rows = services.inventory_export_csv(
                        out=handle, warehouse=warehouse, skip_zero=skip_zero, using=using
                    )
        except BrokenPipeError:  # `export_inventory | head`: the reader had enough
            sys.stderr.close()
            return
        except errors.InventoryError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(f"Exported {rows} inventory rows.")
