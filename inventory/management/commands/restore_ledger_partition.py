"""restore_ledger_partition FILE: load an archived ledger partition back (checked
against its manifest: checksum, row count) and attach it to the ledger. A thin
wrapper over `inventory.services.ledger_partition_restore`; docs/SCALING_LEDGER.md.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inventory import errors, services


class Command(BaseCommand):
    help = "Re-attach an archived ledger partition from its .csv.gz file."

    def add_arguments(self, parser):
        parser.add_argument("file", help="the <partition>.csv.gz written by the archive")

    def handle(self, *args, file, **options):
        try:
            services.ledger_partition_restore(path=Path(file))
        except errors.InventoryError as exc:
            raise CommandError(exc.message, returncode=1) from exc
        self.stdout.write(self.style.SUCCESS(f"Restored and attached {file}."))
