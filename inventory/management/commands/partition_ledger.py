"""partition_ledger: convert the plain ledger into a pg_partman range-partitioned table
(issue #21), online: writers keep going during the copy and wait only for the
final swap (a few seconds' ACCESS EXCLUSIVE lock). A thin wrapper over
`inventory.services.ledger_partition_convert`; see docs/SCALING_LEDGER.md.

Exit status: 0 converted; 1 refused (already partitioned, pg_partman missing, an
interrupted run without --restart); nothing changes on refusal.
"""

from django.core.management.base import BaseCommand, CommandError

from inventory import errors, services


class Command(BaseCommand):
    help = "Convert the ledger to a pg_partman-managed partitioned table (opt-in)."

    def add_arguments(self, parser):
        parser.add_argument("--interval", help="partition width (default: settings)")
        parser.add_argument("--premake", type=int, help="partitions made ahead")
        parser.add_argument("--batch", type=int, default=50_000, help="rows per copy batch")
        parser.add_argument(
            "--restart", action="store_true", help="drop an interrupted run's twin first"
        )
        parser.add_argument(
            "--no-verify", action="store_true", help="skip the row count check under the lock"
        )

    def handle(self, *args, interval, premake, batch, restart, no_verify, **options):
        if batch < 1:
            raise CommandError("--batch must be at least 1.", returncode=1)

        def report(copied: int) -> None:
            self.stdout.write(f"  copied {copied} ledger rows")

        try:
            result = services.ledger_partition_convert(
                interval=interval,
                premake=premake,
                batch=batch,
                verify=not no_verify,
                restart=restart,
                after_batch=report if options["verbosity"] > 1 else None,
            )
        except errors.InventoryError as exc:
            raise CommandError(exc.message, returncode=1) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Ledger partitioned: {result.rows} rows copied in {result.batches} batches, "
                f"{result.partitions} partitions; copy {result.seconds_copy:.1f} s, "
                f"write pause {result.seconds_pause:.2f} s, total {result.seconds_total:.1f} s."
            )
        )
        self.stdout.write(
            "Next: set STOCKROOM_LEDGER_PARTITIONED=true (beat runs pg_partman's maintenance); "
            "the old table is kept as inventory_ledger_unpartitioned: drop it once checked."
        )
