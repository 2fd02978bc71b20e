"""The admin's bulk receive page: upload a CSV, the same service as `manage.py bulk_receive`.

Mounted from inventory_site/urls.py at admin/bulk-receive/, wrapped in
`admin.site.admin_view` (staff login) and guarded by the `backoffice.receive_stock`
permission, the one the single *Receive stock* page checks (Warehouse staff and
Inventory managers; not Purchasing, whose `inventory.change_inventory` is only
for reorder settings); only a user who acts in all warehouses (`backoffice.access`)
may use it, since a file may name any warehouse. The upload is read as a stream
(Django spools big files to disk), so memory stays flat; very large files are
better run with the command, which has no request timeout (docs/BULK.md).
"""

from __future__ import annotations

import io

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.template.response import TemplateResponse

from backoffice.access import require_all_warehouses
from backoffice.models import RECEIVE_STOCK

from . import errors, services
from .actors import actor_for_user
from .models import ReferenceType

PERMISSION = RECEIVE_STOCK
MAX_UPLOAD_BYTES = 50 * 1024 * 1024  # ~1.5 million rows; beyond that use the command


class BulkReceiveForm(forms.Form):
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
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError(
                f"Files over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB: use "
                "`manage.py bulk_receive` (docs/BULK.md)."
            )
        return upload


def bulk_receive_view(request):
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied
    require_all_warehouses(request.user)
    result = None
    format_error = None
    if request.method == "POST":
        form = BulkReceiveForm(request.POST, request.FILES)
        if form.is_valid() and connection.vendor != "postgresql":
            format_error = "Bulk receive needs PostgreSQL; the embedded SQLite cannot run it."
        elif form.is_valid():
            data = form.cleaned_data
            text = io.TextIOWrapper(data["file"].file, encoding="utf-8-sig", newline="")
            try:
                result = services.bulk_receive(
                    source=text,
                    actor=actor_for_user(request.user),
                    reference=data["reference"] or None,
                    reference_type=data["reference_type"],
                    reason=f"bulk receive upload {data['file'].name}"[:200],
                    atomic=not data["skip_invalid"],
                    dry_run=data["dry_run"],
                )
            except errors.InventoryError as exc:
                format_error = f"{exc.message} Nothing was applied."
            else:
                _report(request, result)
    else:
        form = BulkReceiveForm()
    context = {
        **admin.site.each_context(request),
        "title": "Bulk receive",
        "form": form,
        "result": result,
        "format_error": format_error,
    }
    return TemplateResponse(request, "admin/inventory/bulk_receive.html", context)


def _report(request, result: services.BulkReceiveResult) -> None:
    counts = (
        f"{result.rows} rows: {result.applied} applied, "
        f"{result.already_applied} already applied earlier, {result.invalid} bad."
    )
    if result.dry_run:
        messages.info(request, f"Dry run, nothing applied. {counts}")
    elif result.ok:
        messages.success(request, f"Received. {counts}")
    elif result.atomic:
        messages.error(request, f"Nothing applied: fix the bad rows below. {counts}")
    else:
        messages.warning(request, f"Good rows applied; bad rows below. {counts}")
