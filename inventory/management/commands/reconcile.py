"""reconcile [--fix]: check every inventory row against its ledger, its open order
lines and its product's stock policy (the backorder allowance).

A thin wrapper over `inventory.services.inventory_reconcile`. Exit status: 0
clean; 1 discrepancies found (with --fix: all repaired through ADJUST ledger
rows, allowances through AllowanceCorrection entries); 2 some could not be
repaired automatically. See docs/BULK.md. With a balance checkpoint (ledger_checkpoint)
it reads the checkpoint plus the ledger since it (docs/SCALING_LEDGER.md).
"""

import csv

from django.core.management.base import BaseCommand, CommandError

from inventory import errors, services
from inventory.management.progress import progress_for

SHOWN = 50


class Command(BaseCommand):
    help = "Recompute balances from the ledger and open reservations; --fix repairs via ADJUST."

    def add_arguments(self, parser):
        parser.add_argument("--fix", action="store_true", help="repair through ADJUST rows")
        parser.add_argument("--reason", default="", help="prefix for the ADJUST rows' reason")
        parser.add_argument("--limit", type=int, default=100_000, help="most rows reported")
        parser.add_argument("--report", help="write every discrepancy found to this CSV")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, fix, reason, limit, report, no_progress, **options):
        try:
            result = services.inventory_reconcile(
                fix=fix, limit=limit, reason=reason, progress=progress_for(enabled=not no_progress)
            )
        except errors.InventoryError as exc:
            raise CommandError(exc.message, returncode=2) from exc
        if result.checkpoint is not None:
            self.stdout.write(
                f"Ledger read from the balance checkpoint at "
                f"{result.checkpoint.position.isoformat()} onwards."
            )
        if result.clean:
            self.stdout.write(
                self.style.SUCCESS(f"{result.rows_checked} inventory rows checked: all balanced.")
            )
            return
        for d in result.discrepancies[:SHOWN]:
            state = ""
            if fix:
                state = " [fixed]" if d.fixed else f" [NOT fixed: {d.note}]"
            self.stdout.write(f"{d.sku} @ {d.warehouse}: {'; '.join(d.problems)}{state}")
        if len(result.discrepancies) > SHOWN:
            self.stdout.write(f"... and {len(result.discrepancies) - SHOWN} more")
        if report:
            with open(report, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(["sku", "warehouse", "on_hand", "ledger_on_hand", "reserved",
                                 "ledger_reserved", "open_reserved", "fixed", "note",
                                 "allowance", "policy_allowance"])  # fmt: skip
                for d in result.discrepancies:
                    writer.writerow(
                        [d.sku, d.warehouse, d.on_hand, d.ledger_on_hand, d.reserved,
                         d.ledger_reserved, d.open_reserved, d.fixed, d.note, d.allowance,
                         d.policy_allowance]
                    )  # fmt: skip
        more = " (more than the limit: run again)" if result.truncated else ""
        summary = (
            f"{result.rows_checked} inventory rows checked: "
            f"{len(result.discrepancies)} discrepancies{more}"
        )
        if not fix:
            raise CommandError(f"{summary}. Run with --fix to repair them.", returncode=1)
        if result.unfixable:
            raise CommandError(
                f"{summary}; {result.fixed} repaired, {result.unfixable} need manual action.",
                returncode=2,
            )
        raise CommandError(
            f"{summary}; all {result.fixed} repaired through ADJUST ledger rows "
            "(allowances: AllowanceCorrection entries).",
            returncode=1,
        )
