"""ledger_checkpoint: take a balance checkpoint (issue #21), so `reconcile` reads only
the ledger since it. A thin wrapper over `inventory.services.ledger_checkpoint_take`
(beat runs the same daily: inventory.tasks.ledger_checkpoint_task). See
docs/SCALING_LEDGER.md.
"""

from django.core.management.base import BaseCommand, CommandError

from inventory import services


class Command(BaseCommand):
    help = "Take a balance checkpoint (per stock row ledger sums up to a position)."

    def handle(self, *args, **options):
        taken = services.ledger_checkpoint_take()
        if taken.checkpoint is None:
            raise CommandError(f"No checkpoint taken: {taken.skipped}.", returncode=1)
        cp = taken.checkpoint
        self.stdout.write(
            self.style.SUCCESS(
                f"Checkpoint {cp.pk} at {cp.position.isoformat()}: {cp.stock_rows} stock rows, "
                f"{cp.ledger_rows_read} ledger rows read."
            )
        )
