"""archive_ledger_partitions --older-than 400d --to DIR: detach the ledger partitions
that ended before the cut-off (and any pg_partman's retention already detached),
write each to DIR/<partition>.csv.gz with a JSON manifest, check the row count,
record it in LedgerArchive, then drop the table. Partitions not yet covered by a
balance checkpoint are skipped (take one first: ledger_checkpoint). A thin
wrapper over `inventory.services.ledger_partitions_archive`; docs/SCALING_LEDGER.md.
"""

import datetime as dt
import re
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inventory import errors, services

_AGE = re.compile(r"^(\d+)([dh])$")


def parse_age(text: str) -> dt.timedelta:
    match = _AGE.match(text.strip())
    if not match:
        raise CommandError(f"--older-than {text!r}: give days or hours, e.g. 400d or 36h.")
    n, unit = int(match[1]), match[2]
    return dt.timedelta(days=n) if unit == "d" else dt.timedelta(hours=n)


class Command(BaseCommand):
    help = "Detach old ledger partitions and archive them to gzipped CSV files."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, help="e.g. 400d or 36h")
        parser.add_argument("--to", required=True, dest="directory", help="archive directory")

    def handle(self, *args, older_than, directory, **options):
        age = parse_age(older_than)
        try:
            result = services.ledger_partitions_archive(older_than=age, directory=Path(directory))
        except errors.InventoryError as exc:
            raise CommandError(exc.message, returncode=1) from exc
        for record in result.archived:
            self.stdout.write(f"archived {record.partition}: {record.rows} rows -> {record.path}")
        for name, why in result.skipped:
            self.stdout.write(f"skipped {name}: {why}")
        self.stdout.write(
            self.style.SUCCESS(
                f"{len(result.archived)} partitions archived, {len(result.skipped)} skipped."
            )
        )
