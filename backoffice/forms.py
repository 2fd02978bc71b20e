"""Forms for the back-office pages: cycle count, transfer, receive stock
(`StockReceiveForm`), bulk receive (`BulkReceiveForm`) and the purchase order's
receive page (`PurchaseOrderReceiveForm`). The ModelAdmins' own model forms stay
beside them in `backoffice/admin/`.

Lines (SKU + number) come from a small formset, a pasted block of `sku,number`
lines, an uploaded CSV file, or any mix; `collect_lines` merges them and
reports every problem with where it came from. The services validate again:
these checks are for good messages, not for safety.
"""

from __future__ import annotations

import csv
import io
import uuid

from django import forms
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.widgets import AutocompleteSelect
from django.core import signing
from django.core.validators import MaxValueValidator
from django.utils import timezone

from inventory import clock
from inventory.models import Inventory, Product, ReferenceType
from purchasing.services import ReceiptLine
from warehouses.models import Warehouse

from .access import limit_warehouses

MAX_LINES = 500
MAX_UPLOAD_BYTES = 1_000_000
# Bulk receive uploads: ~1.5 million rows; beyond that use the command.
BULK_MAX_UPLOAD_BYTES = 50 * 1024 * 1024
SIGNING_SALT = "backoffice.confirm"


def _warehouse_field(*, active_only: bool, label: str) -> forms.ModelChoiceField:
    queryset = Warehouse.objects.order_by("code")
    if active_only:
        queryset = queryset.filter(is_active=True)
    return forms.ModelChoiceField(queryset=queryset, to_field_name="code", label=label)


class CountLineForm(forms.Form):
    sku = forms.CharField(
        max_length=64,
        required=False,
        label="SKU",
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 18}),
    )
    quantity = forms.IntegerField(required=False, min_value=0, label="Counted")

    def clean(self):
        data = super().clean()
        if data.get("sku") and data.get("quantity") is None and not self.errors:
            self.add_error("quantity", "Enter a number for this SKU.")
        if data.get("quantity") is not None and not data.get("sku"):
            self.add_error("sku", "Enter the SKU for this number.")
        return data


class TransferLineForm(CountLineForm):
    quantity = forms.IntegerField(required=False, min_value=1, label="Quantity")


CountLineFormSet = forms.formset_factory(
    CountLineForm, extra=5, max_num=MAX_LINES, absolute_max=MAX_LINES
)
TransferLineFormSet = forms.formset_factory(
    TransferLineForm, extra=5, max_num=MAX_LINES, absolute_max=MAX_LINES
)
# Receiving (direct and against a purchase order): whole units, at least one.
ReceiveLineFormSet = TransferLineFormSet


class LinesSourceForm(forms.Form):
    """Pasted or uploaded `sku,number` lines, in addition to the formset."""

    paste = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5, "cols": 40, "placeholder": "SKU-1,12\nSKU-2,0"}),
        label="Or paste lines",
        help_text=(
            "One line per SKU: sku,number (comma, semicolon or tab). A first line sku,… is ignored."
        ),
    )
    upload = forms.FileField(required=False, label="Or upload a CSV file")

    def clean_upload(self):
        upload = self.cleaned_data.get("upload")
        if upload and upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 1 MB.")
        return upload


def parse_lines(text: str, *, source: str, min_quantity: int) -> tuple[list, list[str]]:
    """Parse `sku,number` lines; returns ([(sku, number, where)], [errors])."""
    lines, problems = [], []
    sample = text[:1000]
    delimiter = ";" if sample.count(";") > sample.count(",") else ","
    if "\t" in sample and "," not in sample:
        delimiter = "\t"
    for number, row in enumerate(csv.reader(io.StringIO(text), delimiter=delimiter), start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        where = f"{source} line {number}"
        if len(cells) < 2:
            problems.append(f"{where}: expected sku,number, got {','.join(cells)!r}.")
            continue
        sku, raw = cells[0], cells[1]
        try:
            value = int(raw)
        except ValueError:
            if number == 1 and sku.lower() == "sku":  # a header row: sku,counted
                continue
            problems.append(f"{where}: {raw!r} is not a whole number.")
            continue
        if value < min_quantity:
            problems.append(f"{where}: {sku} must be at least {min_quantity}, got {value}.")
            continue
        lines.append((sku, value, where))
    return lines, problems


def collect_lines(formset, source_form, *, min_quantity: int) -> tuple[list[tuple], list[str]]:
    """All lines from the formset, the paste box and the upload, with every problem found."""
    lines, problems = [], []
    for index, form in enumerate(formset.forms, start=1):
        data = getattr(form, "cleaned_data", {})
        if not form.errors and data.get("sku") and data.get("quantity") is not None:
            lines.append((data["sku"].strip(), data["quantity"], f"row {index}"))
    for index, form in enumerate(formset.forms, start=1):
        for field, field_errors in form.errors.items():
            for error in field_errors:
                problems.append(f"Row {index} {field}: {error}")
    parsed, parse_problems = parse_lines(
        source_form.cleaned_data.get("paste") or "", source="Pasted", min_quantity=min_quantity
    )
    lines += parsed
    problems += parse_problems
    upload = source_form.cleaned_data.get("upload")
    if upload:
        try:
            text = upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            problems.append("The uploaded file is not UTF-8 text.")
        else:
            parsed, parse_problems = parse_lines(text, source="File", min_quantity=min_quantity)
            lines += parsed
            problems += parse_problems
    seen: dict[str, object] = {}
    for sku, _, where in lines:
        if sku in seen:
            problems.append(f"{sku} is listed twice ({seen[sku]} and {where}).")
        seen[sku] = where
    if not lines and not problems:
        problems.append("Enter at least one SKU.")
    if len(lines) > MAX_LINES:
        problems.append(f"At most {MAX_LINES} lines at once.")
    maximum = settings.STOCKROOM_MAX_QUANTITY
    for sku, value, _ in lines:
        if value > maximum:
            problems.append(f"{sku}: {value} is more than the maximum of {maximum}.")
    return [(sku, value) for sku, value, _ in lines], problems


class _WarehousesOfUser:
    """Offers, in the fields named by `user_warehouse_fields`, only the warehouses the
    user may act in (`backoffice.access`; maybe none); any other code is refused."""

    user_warehouse_fields: tuple[str, ...] = ()

    def __init__(self, *args, user, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.user_warehouse_fields:
            field = self.fields[name]
            field.queryset = limit_warehouses(field.queryset, user)
            field.error_messages["invalid_choice"] = "Select one of the warehouses you work at."


class CycleCountForm(_WarehousesOfUser, forms.Form):
    user_warehouse_fields = ("warehouse",)
    warehouse = _warehouse_field(active_only=True, label="Warehouse")


class TransferForm(_WarehousesOfUser, forms.Form):
    """Staff book a transfer where the stock leaves: the source is one of their
    warehouses, the destination any active one."""

    user_warehouse_fields = ("source",)
    source = _warehouse_field(active_only=False, label="From warehouse")
    destination = _warehouse_field(active_only=True, label="To warehouse")
    reason = forms.CharField(max_length=500, required=False, label="Reason (optional)")

    def clean(self):
        data = super().clean()
        if data.get("source") and data.get("source") == data.get("destination"):
            raise forms.ValidationError("Source and destination warehouse must differ.")
        return data


class TransferShipForm(TransferForm):
    """Ship a two-step transfer (`TransferAdmin.ship_view`): the instant transfer's
    fields plus the expected arrival date, and the transfer id, made when the page
    opens and carried through preview and confirmation, so a second submit of the
    same page replays the shipment instead of shipping again."""

    expected_date = forms.DateField(
        required=False,
        label="Expected arrival (optional)",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    transfer_id = forms.CharField(widget=forms.HiddenInput, max_length=100)

    field_order = ["source", "destination", "expected_date", "reason", "transfer_id"]

    def clean_expected_date(self):
        # Said on the field before the preview; `transfer_ship` has the last word.
        expected = self.cleaned_data["expected_date"]
        if expected and expected < timezone.localdate(clock.now()):
            raise forms.ValidationError("The expected arrival may not be in the past.")
        return expected

    def clean(self):
        try:
            return super().clean()
        except forms.ValidationError as exc:
            # The same warehouse twice: say so at the destination field.
            self.add_error("destination", exc)
            return self.cleaned_data


class ConfirmForm(forms.Form):
    """The second step: the signed preview (what was shown) plus, for counts, a reason."""

    payload = forms.CharField(widget=forms.HiddenInput)
    reason = forms.CharField(max_length=500, required=False)

    def __init__(self, *args, reason_required: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["reason"].required = reason_required

    def clean_payload(self):
        try:
            return signing.loads(self.cleaned_data["payload"], salt=SIGNING_SALT, max_age=86400)
        except signing.BadSignature as exc:
            raise forms.ValidationError("The preview expired or was altered; start again.") from exc


def sign_payload(data: dict) -> str:
    return signing.dumps(data, salt=SIGNING_SALT)


class StockReceiveForm(_WarehousesOfUser, forms.Form):
    """Receive stock (`/admin/backoffice/receive/`): one SKU picked in the autocomplete
    (booked at once), or else scanned / typed lines (`ReceiveLineFormSet`, booked after
    a preview)."""

    user_warehouse_fields = ("warehouse",)
    warehouse = _warehouse_field(active_only=True, label="Warehouse")
    product = forms.ModelChoiceField(
        queryset=Product.objects.all(),
        required=False,
        widget=AutocompleteSelect(Inventory._meta.get_field("product"), admin.site),
        help_text="Type part of the SKU or name (one product), or scan lines below.",
    )
    quantity = forms.IntegerField(min_value=1, required=False)
    delivery_note = forms.CharField(
        max_length=100, required=False, help_text="Delivery note or carrier reference (optional)."
    )
    reason = forms.CharField(max_length=500, required=False)
    token = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        maximum = settings.STOCKROOM_MAX_QUANTITY
        self.fields["quantity"].validators.append(MaxValueValidator(maximum))
        self.fields["quantity"].widget.attrs["max"] = maximum

    def clean(self):
        data = super().clean()
        if data.get("product") and data.get("quantity") is None and "quantity" not in self.errors:
            self.add_error("quantity", "Enter the quantity received.")
        if data.get("quantity") is not None and not data.get("product"):
            self.add_error("product", "Pick the product received.")
        return data


class BulkReceiveForm(forms.Form):
    """Bulk receive (`/admin/bulk-receive/`): a CSV file, the command's options."""

    file = forms.FileField(help_text="CSV with a header: sku,warehouse,quantity[,reference].")
    reference = forms.CharField(
        max_length=100,
        required=False,
        help_text="Delivery note, PO or import id for rows without a reference cell. "
        "Re-uploading under the same reference applies nothing twice.",
    )
    reference_type = forms.ChoiceField(choices=ReferenceType.choices, initial=ReferenceType.IMPORT)
    skip_invalid = forms.BooleanField(
        required=False,
        label="Apply the good rows even if some are bad",
        help_text="Unticked (default): any bad row and nothing is applied.",
    )
    dry_run = forms.BooleanField(required=False, label="Dry run (validate only)")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > BULK_MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"Files over {BULK_MAX_UPLOAD_BYTES // (1024 * 1024)} MB: use "
                "`manage.py bulk_receive` (docs/BULK.md)."
            )
        return upload


class PurchaseOrderReceiveForm(forms.Form):
    """Booking a delivery on a purchase order in one step: quantities per line as
    `line_<pk>` fields (what the receive page posted before scan mode, still
    accepted); `receipt_id` (made when the page is shown) makes a double submission
    book the delivery once. The page itself now posts scanned lines
    (`PurchaseOrderLinesForm`) and confirms a preview (`PurchaseOrderConfirmForm`)."""

    receipt_id = forms.CharField(widget=forms.HiddenInput, max_length=100)
    allow_over_receipt = forms.BooleanField(
        required=False, label="Accept more than was ordered (over-receipt)"
    )
    reason = forms.CharField(required=False, max_length=200, label="Note (delivery note, truck…)")

    def __init__(self, *args, lines, **kwargs):
        super().__init__(*args, **kwargs)
        self.lines = lines
        self.fields["receipt_id"].initial = f"admin-{uuid.uuid4().hex}"
        for line in lines:
            self.fields[f"line_{line.pk}"] = forms.IntegerField(
                min_value=0,
                required=False,
                label=line.product.sku,
            )

    def receipt_lines(self) -> list[ReceiptLine]:
        return [
            ReceiptLine(line.product.sku, self.cleaned_data[f"line_{line.pk}"])
            for line in self.lines
            if self.cleaned_data.get(f"line_{line.pk}")
        ]


class PurchaseOrderLinesForm(forms.Form):
    """The receive page's first step: what arrived is in the lines formset (scanned or
    typed, counted from zero); this form carries the rest."""

    receipt_id = forms.CharField(widget=forms.HiddenInput, max_length=100)
    allow_over_receipt = forms.BooleanField(
        required=False, label="Accept more than was ordered (over-receipt)"
    )
    reason = forms.CharField(required=False, max_length=200, label="Note (delivery note, truck…)")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["receipt_id"].initial = f"admin-{uuid.uuid4().hex}"


LEAVE_OPEN, CLOSE_SHORT = "open", "close"


class PurchaseOrderConfirmForm(ConfirmForm):
    """The receive page's second step: the signed preview, and for every line this
    delivery leaves short, whether the rest stays open (backorder) or the line is
    closed short, with a reason."""

    def __init__(self, *args, short_lines: list[dict], **kwargs):
        super().__init__(*args, **kwargs)
        self.short_lines = short_lines
        for index, line in enumerate(short_lines):
            self.fields[f"rest_{index}"] = forms.ChoiceField(
                choices=[
                    (LEAVE_OPEN, f"Leave {line['left']} open (backorder)"),
                    (CLOSE_SHORT, "Close the line short"),
                ],
                initial=LEAVE_OPEN,
                widget=forms.RadioSelect,
                label=line["sku"],
            )
            self.fields[f"why_{index}"] = forms.CharField(
                required=False, max_length=200, label=f"Why close {line['sku']} short"
            )

    def rows(self):
        return [
            (line, self[f"rest_{index}"], self[f"why_{index}"])
            for index, line in enumerate(self.short_lines)
        ]

    def clean(self):
        data = super().clean()
        for index, line in enumerate(self.short_lines):
            if data.get(f"rest_{index}") == CLOSE_SHORT and not data.get(f"why_{index}"):
                self.add_error(f"why_{index}", f"Say why {line['sku']} is closed short.")
        return data

    def close_short(self) -> dict[str, str]:
        """{sku: reason} of the lines to close short."""
        return {
            line["sku"]: self.cleaned_data[f"why_{index}"]
            for index, line in enumerate(self.short_lines)
            if self.cleaned_data.get(f"rest_{index}") == CLOSE_SHORT
        }


# --- Stock states and the returns dock (issue #15) ----------------------------------

STATE_CHOICES = [
    ("sellable", "Sellable"),
    ("damaged", "Damaged"),
    ("quality_control", "Quality control"),
]
WRITTEN_OFF_CHOICE = ("written_off", "Written off (leaves on hand)")


class StateMoveForm(_WarehousesOfUser, forms.Form):
    """Move units of one stock row between states (`stock_move_state`), or write them
    off (only offered with `backoffice.write_off_stock`). A reason is required; the
    hidden token makes a double submission move the units once."""

    user_warehouse_fields = ("warehouse",)
    warehouse = _warehouse_field(active_only=False, label="Warehouse")
    sku = forms.CharField(
        max_length=64, label="SKU or barcode", widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    from_state = forms.ChoiceField(choices=STATE_CHOICES, label="From")
    to_state = forms.ChoiceField(choices=STATE_CHOICES, label="To")
    quantity = forms.IntegerField(min_value=1, label="Units")
    reason = forms.CharField(
        max_length=500,
        label="Reason",
        help_text="Required: what was found (for example: QC passed, crushed box, water damage).",
    )
    token = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, may_write_off: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if may_write_off:
            self.fields["to_state"].choices = [*STATE_CHOICES, WRITTEN_OFF_CHOICE]
        self.fields["quantity"].validators.append(
            MaxValueValidator(settings.STOCKROOM_MAX_QUANTITY)
        )
        self.fields["quantity"].widget.attrs["inputmode"] = "numeric"

    def clean(self):
        data = super().clean()
        if data.get("from_state") and data.get("from_state") == data.get("to_state"):
            self.add_error("to_state", "Pick a state other than the one the units are in.")
        return data


DISPOSITION_CHOICES = [
    ("restock", "Restock (sellable)"),
    ("damaged", "Damaged"),
    ("quality_control", "Quality control"),
    ("dispose", "Dispose (no stock)"),
]


class ReturnLineForm(forms.Form):
    sku = forms.CharField(
        max_length=64,
        required=False,
        label="SKU",
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 18}),
    )
    quantity = forms.IntegerField(required=False, min_value=1, label="Came back")
    disposition = forms.ChoiceField(choices=DISPOSITION_CHOICES, initial="restock")

    def clean(self):
        data = super().clean()
        if data.get("sku") and data.get("quantity") is None and not self.errors:
            self.add_error("quantity", "Enter how many came back.")
        if data.get("quantity") is not None and not data.get("sku"):
            self.add_error("sku", "Enter the SKU for this number.")
        return data


ReturnLineFormSet = forms.formset_factory(
    ReturnLineForm, extra=3, max_num=MAX_LINES, absolute_max=MAX_LINES
)


class ReturnForm(_WarehousesOfUser, forms.Form):
    """The returns dock: where the goods came back, the order (optional), a note,
    and the return id made when the page is shown (a double submission replays)."""

    user_warehouse_fields = ("warehouse",)
    warehouse = _warehouse_field(active_only=True, label="Dock (warehouse)")
    order_id = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)
    reason = forms.CharField(
        max_length=500, required=False, label="Note (optional: carrier, RMA, state of the parcel)"
    )
    return_id = forms.CharField(max_length=100, widget=forms.HiddenInput)


def collect_return_lines(formset) -> tuple[list[tuple[str, int, str]], list[str]]:
    """(code, quantity, disposition) of the filled rows, the same code and disposition
    merged; problems name their row (and are set on it)."""
    merged: dict[tuple[str, str], int] = {}
    problems = []
    for index, form in enumerate(formset.forms, start=1):
        data = getattr(form, "cleaned_data", {})
        for field, field_errors in form.errors.items():
            problems += [f"Row {index} {field}: {error}" for error in field_errors]
        if not form.errors and data.get("sku") and data.get("quantity") is not None:
            key = (data["sku"].strip(), data["disposition"])
            merged[key] = merged.get(key, 0) + data["quantity"]
    if not merged and not problems:
        problems.append("Scan or enter at least one returned SKU.")
    maximum = settings.STOCKROOM_MAX_QUANTITY
    for (code, _), quantity in merged.items():
        if quantity > maximum:
            problems.append(f"{code}: {quantity} is more than the maximum of {maximum}.")
    return [(code, q, disposition) for (code, disposition), q in merged.items()], problems
