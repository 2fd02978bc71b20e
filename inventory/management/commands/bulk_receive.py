"""bulk_receive FILE|-: receive a CSV of stock (sku,warehouse,quantity[,reference]).

A thin wrapper over `inventory.services.bulk.stock_receive_bulk`: parses options, opens
the file (or stdin), shows progress, writes the report of bad rows and turns
the outcome into an exit status (0 all good, 1 bad rows, 2 unreadable file).
See docs/BULK.md.
"""

from __future__ import annotations

import io
import sys
from datetime import UTC, datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from inventory import errors, services
from inventory.management.progress import progress_for
from inventory.models import ReferenceType

ACTOR = "system:bulk-receive"


def count_lines(path: Path) -> int:
    """Newlines in the file (a cheap row estimate for the progress bar's ETA)."""
    count = 0
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
    return count


class Command(BaseCommand):
    help = "Receive stock from a CSV file (or - for stdin), set-based; see docs/BULK.md."

    def add_arguments(self, parser):
        parser.add_argument("file", help="CSV: sku,warehouse,quantity[,reference]; - is stdin")
        parser.add_argument("--reference", help="reference id for rows without a reference cell")
        parser.add_argument(
            "--reference-type", default=ReferenceType.IMPORT, choices=ReferenceType.values
        )
        parser.add_argument("--reason", default="bulk receive", help="ledger reason")
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument(
            "--atomic", dest="atomic", action="store_true", default=True,
            help="all rows or none (default)",
        )  # fmt: skip
        mode.add_argument(
            "--skip-invalid", dest="atomic", action="store_false",
            help="apply the good rows, report the bad ones",
        )  # fmt: skip
        parser.add_argument("--dry-run", action="store_true", help="validate and report only")
        parser.add_argument(
            "--report", help="where to write bad rows (default FILE.report.csv, or "
            "bulk_receive-<time>.report.csv for stdin)",
        )  # fmt: skip
        parser.add_argument("--actor", default=ACTOR, help=f"ledger created_by (default {ACTOR})")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, file, reference, reference_type, reason, atomic, dry_run, report,
               actor, no_progress, **options):  # fmt: skip
        if file == "-":
            source = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
            total = None
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            report_path = Path(report or f"bulk_receive-{stamp}.report.csv")
        else:
            path = Path(file)
            if not path.is_file():
                raise CommandError(f"No such file: {file}", returncode=2)
            source = path.open(encoding="utf-8-sig", newline="")
            total = max(count_lines(path) - 1, 0)
            report_path = Path(report or f"{file}.report.csv")
        progress = progress_for(enabled=not no_progress)
        progress = _WithTotal(progress, total)
        try:
            with source, report_path.open("w", encoding="utf-8", newline="") as report_file:
                result = services.stock_receive_bulk(
                    source=source, actor=actor, reference=reference,
                    reference_type=reference_type, reason=reason, atomic=atomic,
                    dry_run=dry_run, report=report_file, progress=progress,
                )  # fmt: skip
        except errors.InventoryError as exc:
            raise CommandError(f"{exc.message} Nothing was applied.", returncode=2) from exc
        self.stdout.write(_summary(result, report_path))
        if not result.ok:
            first = result.bad_rows[0]
            raise CommandError(
                f"{result.invalid} bad row(s), first on line {first.line}: {first.message} "
                f"({first.error}). "
                + ("Nothing was applied. " if (atomic or dry_run) else "Good rows were applied. ")
                + f"Report: {report_path}",
                returncode=1,
            )


class _WithTotal:
    """Gives the reading phase the row estimate, so the bar has an ETA."""

    def __init__(self, inner, total: int | None) -> None:
        self.inner, self.total = inner, total

    def phase(self, name: str, total: int | None = None) -> None:
        if name == "reading rows" and total is None:
            total = self.total
        self.inner.phase(name, total)

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)

    def close(self) -> None:
        self.inner.close()


def _summary(result, report_path: Path) -> str:
    head = "Dry run: " if result.dry_run else ""
    text = (
        f"{head}{result.rows} rows read: {result.valid} valid, {result.invalid} bad; "
        f"{result.applied} applied, {result.already_applied} already applied earlier "
        f"(same reference). Report: {report_path}"
    )
    if result.dry_run:
        text += ". Nothing was applied (dry run)."
    elif result.atomic and result.invalid:
        text += ". Nothing was applied (atomic: fix the bad rows or use --skip-invalid)."
    return text
