"""Receive a delivery against a purchase order from the command line.

    manage.py receive_purchase_order PO-000042                # everything outstanding
    manage.py receive_purchase_order PO-… --line MUG=6 --line CUP=4      # a partial delivery
    manage.py receive_purchase_order PO-… --line MUG=12 --allow-over-receipt
    manage.py receive_purchase_order PO-… --line MUG=6 --receipt-id DN-4711   # safe to re-run

Give `--receipt-id` (e.g. the delivery note number) when the command may be run
again for the same delivery: a repeat with the same id changes nothing.
"""

from django.core.management.base import BaseCommand, CommandError

from inventory.actors import SYSTEM_COMMAND
from inventory.errors import InventoryError
from purchasing import services


def parse_line(text: str) -> services.ReceiptLine:
    sku, sep, quantity = text.rpartition("=")
    if not sep or not sku:
        raise CommandError(f"--line expects SKU=QTY, got {text!r}.")
    try:
        return services.ReceiptLine(sku.strip(), int(quantity))
    except ValueError:
        raise CommandError(f"--line {text!r}: quantity must be a whole number.") from None


class Command(BaseCommand):
    help = "Receive a purchase order, fully or per line (SKU=QTY), through the purchasing service."

    def add_arguments(self, parser):
        parser.add_argument("number", help="Purchase order number, e.g. PO-000042.")
        parser.add_argument(
            "--line",
            action="append",
            default=[],
            metavar="SKU=QTY",
            help="Quantity delivered for one SKU (repeatable). Without it: all outstanding.",
        )
        parser.add_argument(
            "--allow-over-receipt",
            action="store_true",
            help="Accept more than was ordered.",
        )
        parser.add_argument(
            "--receipt-id",
            help="Id of this delivery (e.g. the delivery note): a repeat changes nothing.",
        )
        parser.add_argument("--reason", default="", help="Note for the ledger rows.")
        parser.add_argument("--actor", default=SYSTEM_COMMAND, help="Recorded as created_by.")

    def handle(self, *args, number, line, allow_over_receipt, receipt_id, reason, actor, **opts):
        lines = [parse_line(text) for text in line] or None
        try:
            result = services.purchase_order_receive(
                purchase_order=number,
                actor=actor,
                lines=lines,
                receipt_id=receipt_id,
                allow_over_receipt=allow_over_receipt,
                reason=reason,
            )
        except InventoryError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from exc
        po = result.purchase_order
        if result.replayed:
            self.stdout.write(f"Receipt {result.receipt.key} was already booked; nothing changed.")
            return
        booked = ", ".join(f"{qty} x {sku}" for sku, qty in result.receipt.lines.items())
        self.stdout.write(
            self.style.SUCCESS(f"{po.number}: received {booked}; status {po.status}.")
        )
