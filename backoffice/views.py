"""The back-office pages: cycle count, transfer, direct receive and bulk receive.

Thin edges: validate the input, show a preview, and on confirmation call the
stock services with the staff user as actor. A refused operation
(`InventoryError`) becomes an error message and changes nothing. Every view is
wrapped in `admin_view` (staff login, CSRF) by `StockroomAdminSite.get_urls`
(bulk receive: by inventory_site/urls.py) and checks its own permission:
without it, 403.
"""

from __future__ import annotations

import io
import uuid
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from inventory import errors, services
from inventory.actors import actor_for_user
from inventory.models import ReferenceType
from inventory.services import Reference, TransferLine

from . import selectors
from .access import (
    NO_WAREHOUSE_MESSAGE,
    acts_in_all_warehouses,
    require_all_warehouses,
    require_warehouses,
    works_nowhere,
)
from .forms import (
    MAX_LINES,
    BulkReceiveForm,
    ConfirmForm,
    CountLineFormSet,
    CycleCountForm,
    LinesSourceForm,
    ReceiveLineFormSet,
    StockReceiveForm,
    TransferForm,
    TransferLineFormSet,
    collect_lines,
    sign_payload,
)
from .models import BOOK_RETURN, CYCLE_COUNT, MOVE_STOCK_STATE, RECEIVE_STOCK, TRANSFER_STOCK
from .services import CountLine, ReceiveLine, cycle_count_apply, receive_apply

LAST_WAREHOUSE_SESSION_KEY = "backoffice_last_warehouse"

# (permission, label, url name, only for users who act in all warehouses)
ACTIONS = [
    (CYCLE_COUNT, "Cycle count", "admin:backoffice_cycle_count", False),
    (TRANSFER_STOCK, "Transfer", "admin:backoffice_transfer", False),
    (TRANSFER_STOCK, "Ship a transfer", "admin:inventory_transfer_ship", False),
    (RECEIVE_STOCK, "Receive stock", "admin:backoffice_receive", False),
    (BOOK_RETURN, "Returns dock", "admin:backoffice_returns", False),
    (MOVE_STOCK_STATE, "Damaged / quality control", "admin:backoffice_state_move", False),
    # A CSV may name any warehouse (bulk_receive_view below).
    (RECEIVE_STOCK, "Bulk receive (CSV)", "admin-bulk-receive", True),
]


def actions_for(user) -> list[dict]:
    """The back-office actions `user` may take (what the start page and header show)."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return []
    allowed = [action for action in ACTIONS if user.has_perm(action[0])]
    if any(every_warehouse for *_, every_warehouse in allowed):
        everywhere = acts_in_all_warehouses(user)
        allowed = [action for action in allowed if everywhere or not action[3]]
    return [{"label": label, "url": reverse(url_name)} for _, label, url_name, _ in allowed]


def _require(request, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def _render(request, template: str, title: str, context: dict) -> TemplateResponse:
    if works_nowhere(request.user):
        messages.error(request, NO_WAREHOUSE_MESSAGE)
    return TemplateResponse(
        request, template, {**admin.site.each_context(request), "title": title, **context}
    )


def _errors(request, problems: list[str]) -> None:
    for problem in problems:
        messages.error(request, problem)


def resolve_lines(
    lines: list[tuple[str, int]], formset=None
) -> tuple[list[tuple[str, int]], list[str]]:
    """Typed or scanned codes -> the products' SKUs (`selectors.products_by_code`: exact
    SKU, barcode, or SKU in any case). Unknown codes are errors on their formset row
    and in the message; two codes naming one SKU are an error too."""
    products = selectors.products_by_code(code for code, _ in lines)
    unknown = [code for code, _ in lines if code not in products]
    if unknown:
        if formset is not None:
            for form in formset.forms:
                code = (getattr(form, "cleaned_data", None) or {}).get("sku")
                if code and code.strip() in unknown:
                    form.add_error("sku", "Unknown SKU or barcode.")
        return [], [errors.UnknownSku(unknown).message]
    resolved, seen, problems = [], {}, []
    for code, number in lines:
        sku = products[code].sku
        if sku in seen:
            problems.append(f"{code} and {seen[sku]} are both {sku}: list it once.")
            continue
        seen[sku] = code
        resolved.append((sku, number))
    return resolved, problems


def lookup_view(request):
    """GET ?code=… (a SKU in any case, or a barcode): the product, as JSON, for the scan
    inputs (backoffice/static/backoffice/scan.js). 404 with a `code` when unknown.

    With ?po=<id>: the code must name a line of that purchase order (else 404
    `not_on_purchase_order`); the answer adds what is still outstanding."""
    if not (
        request.user.has_perm("inventory.view_product")
        or any(request.user.has_perm(action[0]) for action in ACTIONS)
    ):
        raise PermissionDenied
    code = (request.GET.get("code") or "").strip()[:64]
    product = selectors.products_by_code([code]).get(code) if code else None
    if product is None:
        return JsonResponse(
            {"code": "unknown_sku", "message": f"Unknown SKU or barcode: {code or '(empty)'}."},
            status=404,
        )
    answer = {"sku": product.sku, "name": product.name, "barcode": product.barcode or ""}
    po_id = request.GET.get("po")
    if po_id:
        line = selectors.purchase_order_line(po_id, product)
        if line is None:
            return JsonResponse(
                {
                    "code": "not_on_purchase_order",
                    "message": f"{product.sku} is not on this purchase order.",
                },
                status=404,
            )
        answer["outstanding"] = line.quantity_outstanding
        answer["closed_short"] = line.closed_short_at is not None
    return JsonResponse(answer)


def ledger_url(reference: Reference) -> str:
    query = urlencode({"reference_type__exact": reference.type, "reference_id": reference.id})
    return f"{reverse('admin:inventory_inventorytransaction_changelist')}?{query}"


# --- Cycle count -------------------------------------------------------------------


def _count_preview(warehouse: str, lines: list[tuple[str, int]]) -> tuple[list[dict], list[str]]:
    """Preview rows (on hand now, counted, difference) and the problems that block confirming."""
    skus = [sku for sku, _ in lines]
    products = selectors.products_by_sku(skus)
    unknown = [sku for sku in skus if sku not in products]
    if unknown:
        return [], [errors.UnknownSku(unknown).message]
    rows = selectors.balances_for(warehouse, skus)
    preview, problems = [], []
    for sku, counted in lines:
        row = rows.get(sku)
        on_hand = row.on_hand if row else 0
        reserved = row.reserved if row else 0
        allowance = row.backorder_allowance if row else 0
        if counted - reserved < -allowance:
            problems.append(
                f"{sku}: {reserved} units are reserved by open orders; on hand cannot be "
                f"counted as {counted}. Release or re-route those orders first."
            )
        preview.append(
            {
                "sku": sku,
                "name": products[sku].name,
                "on_hand": on_hand,
                "reserved": reserved,
                "counted": counted,
                "difference": counted - on_hand,
            }
        )
    return preview, problems


def _count_preview_response(request, warehouse: str, preview: list[dict], confirm_form=None):
    payload = {
        "warehouse": warehouse,
        "count_id": str(uuid.uuid4()),
        "lines": [[row["sku"], row["counted"], row["on_hand"]] for row in preview],
    }
    confirm_form = confirm_form or ConfirmForm(
        initial={"payload": sign_payload(payload)}, reason_required=True
    )
    return _render(
        request,
        "backoffice/cycle_count_preview.html",
        "Cycle count: check and confirm",
        {
            "warehouse": warehouse,
            "preview": preview,
            "confirm_form": confirm_form,
            "changes": sum(1 for row in preview if row["difference"]),
        },
    )


def cycle_count_view(request):
    _require(request, CYCLE_COUNT)
    if request.method == "POST" and request.POST.get("step") == "confirm":
        return _cycle_count_confirm(request)
    form = CycleCountForm(
        request.POST or None,
        user=request.user,
        initial={"warehouse": request.session.get(LAST_WAREHOUSE_SESSION_KEY)},
    )
    # From the start page's "counts due": ?warehouse=BER&sku=A-1&sku=B-2 (a count sheet).
    due = [{"sku": sku} for sku in request.GET.getlist("sku")[:MAX_LINES] if sku]
    if request.method == "POST":
        due = []
    elif request.GET.get("warehouse"):
        form.initial["warehouse"] = request.GET["warehouse"]
    formset = CountLineFormSet(request.POST or None, prefix="lines", initial=due or None)
    source = LinesSourceForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        form_ok = form.is_valid()
        formset.is_valid()
        source.is_valid()
        lines, problems = collect_lines(formset, source, min_quantity=0)
        problems += [f"{e}" for e in source.non_field_errors()]
        for field, field_errors in source.errors.items():
            problems += [f"{field}: {e}" for e in field_errors]
        if form_ok and not problems:
            lines, problems = resolve_lines(lines, formset)
        if form_ok and not problems:
            warehouse = form.cleaned_data["warehouse"].code
            request.session[LAST_WAREHOUSE_SESSION_KEY] = warehouse
            preview, problems = _count_preview(warehouse, lines)
            if not problems:
                return _count_preview_response(request, warehouse, preview)
        _errors(request, problems)
    return _render(
        request,
        "backoffice/cycle_count.html",
        "Cycle count",
        {"form": form, "formset": formset, "source": source},
    )


def _cycle_count_confirm(request):
    confirm = ConfirmForm(request.POST, reason_required=True)
    if not confirm.is_valid():
        payload = confirm.cleaned_data.get("payload")
        if payload is None:
            _errors(request, confirm.errors.get("payload", []))
            return HttpResponseRedirect(reverse("admin:backoffice_cycle_count"))
        messages.error(request, "Enter a reason for the count.")
        preview, _ = _count_preview(payload["warehouse"], [(s, c) for s, c, _ in payload["lines"]])
        for row, (_, _, expected) in zip(preview, payload["lines"], strict=True):
            row["on_hand"], row["difference"] = expected, row["counted"] - expected
        return _count_preview_response(request, payload["warehouse"], preview, confirm)
    payload = confirm.cleaned_data["payload"]
    warehouse = payload["warehouse"]
    require_warehouses(request.user, warehouse)  # assignments may change after the preview
    try:
        result = cycle_count_apply(
            warehouse=warehouse,
            lines=[
                CountLine(sku, counted, expected) for sku, counted, expected in payload["lines"]
            ],
            reason=confirm.cleaned_data["reason"],
            actor=actor_for_user(request.user),
            count_id=payload["count_id"],
        )
    except errors.InventoryError as exc:
        messages.error(request, exc.message)
        if isinstance(exc, errors.StockChanged):
            messages.warning(
                request,
                "Stock moved since the preview, so nothing was saved. The preview below "
                "shows the current on hand: check the counts and confirm again.",
            )
        preview, problems = _count_preview(warehouse, [(s, c) for s, c, _ in payload["lines"]])
        _errors(request, problems)
        if problems:
            return HttpResponseRedirect(reverse("admin:backoffice_cycle_count"))
        return _count_preview_response(request, warehouse, preview)
    counted = len(payload["lines"])
    if result.replayed:
        messages.info(request, "This count was already saved; nothing was changed again.")
    else:
        messages.success(
            request,
            f"Cycle count saved in {warehouse}: {counted} SKU(s) counted, "
            f"{len(result.transactions)} adjusted.",
        )
    return HttpResponseRedirect(ledger_url(result.reference))


# --- Transfer ------------------------------------------------------------------------


def _transfer_preview(
    source: str, destination: str, lines: list[tuple[str, int]]
) -> tuple[list[dict], list[str]]:
    skus = [sku for sku, _ in lines]
    products = selectors.products_by_sku(skus)
    unknown = [sku for sku in skus if sku not in products]
    if unknown:
        return [], [errors.UnknownSku(unknown).message]
    at_source = selectors.balances_for(source, skus)
    at_destination = selectors.balances_for(destination, skus)
    preview, problems = [], []
    for sku, quantity in lines:
        # What may leave: the service's own rule (sellable units), which has the last word.
        available = services.transferable_units(at_source.get(sku))
        dest_on_hand = at_destination[sku].on_hand if sku in at_destination else 0
        if quantity > available:
            problems.append(
                f"Not enough available stock in {source}: {sku} needs {quantity}, "
                f"{available} available."
            )
        preview.append(
            {
                "sku": sku,
                "name": products[sku].name,
                "quantity": quantity,
                "source_available": available,
                "destination_on_hand": dest_on_hand,
                "destination_after": dest_on_hand + quantity,
            }
        )
    return preview, problems


def _transfer_preview_response(request, payload: dict, preview: list[dict]):
    return _render(
        request,
        "backoffice/transfer_preview.html",
        "Transfer: check and confirm",
        {
            "source": payload["source"],
            "destination": payload["destination"],
            "reason": payload["reason"],
            "preview": preview,
            "confirm_form": ConfirmForm(initial={"payload": sign_payload(payload)}),
        },
    )


def transfer_view(request):
    _require(request, TRANSFER_STOCK)
    if request.method == "POST" and request.POST.get("step") == "confirm":
        return _transfer_confirm(request)
    form = TransferForm(request.POST or None, user=request.user)
    formset = TransferLineFormSet(request.POST or None, prefix="lines")
    source = LinesSourceForm(request.POST or None, request.FILES or None)
    if request.method == "POST":
        form_ok = form.is_valid()
        formset.is_valid()
        source.is_valid()
        lines, problems = collect_lines(formset, source, min_quantity=1)
        problems = list(form.non_field_errors()) + problems
        if form_ok and not problems:
            lines, problems = resolve_lines(lines, formset)
        if form_ok and not problems:
            payload = {
                "source": form.cleaned_data["source"].code,
                "destination": form.cleaned_data["destination"].code,
                "reason": form.cleaned_data["reason"],
                "transfer_id": str(uuid.uuid4()),
                "lines": lines,
            }
            preview, problems = _transfer_preview(payload["source"], payload["destination"], lines)
            if not problems:
                return _transfer_preview_response(request, payload, preview)
        _errors(request, problems)
    return _render(
        request,
        "backoffice/transfer.html",
        "Transfer stock",
        {"form": form, "formset": formset, "source": source},
    )


def _transfer_confirm(request):
    confirm = ConfirmForm(request.POST)
    if not confirm.is_valid():
        _errors(request, confirm.errors.get("payload", []))
        return HttpResponseRedirect(reverse("admin:backoffice_transfer"))
    payload = confirm.cleaned_data["payload"]
    require_warehouses(request.user, payload["source"])
    reference = Reference(ReferenceType.TRANSFER, payload["transfer_id"])
    try:
        result = services.stock_transfer(
            source=payload["source"],
            destination=payload["destination"],
            lines=[TransferLine(sku, quantity) for sku, quantity in payload["lines"]],
            actor=actor_for_user(request.user),
            reason=payload["reason"],
            reference=reference,
            idempotency_key=f"admin-transfer:{payload['transfer_id']}",
        )
    except errors.InventoryError as exc:
        messages.error(request, exc.message)
        preview, problems = _transfer_preview(
            payload["source"], payload["destination"], [tuple(line) for line in payload["lines"]]
        )
        _errors(request, problems)
        if problems:
            return HttpResponseRedirect(reverse("admin:backoffice_transfer"))
        messages.warning(request, "Nothing was moved. Check the preview and confirm again.")
        return _transfer_preview_response(
            request, {**payload, "transfer_id": str(uuid.uuid4())}, preview
        )
    if result.replayed:
        messages.info(request, "This transfer was already saved; nothing was moved again.")
    else:
        units = sum(quantity for _, quantity in payload["lines"])
        messages.success(
            request,
            f"Transferred {units} unit(s) of {len(payload['lines'])} SKU(s) from "
            f"{payload['source']} to {payload['destination']}.",
        )
    return HttpResponseRedirect(ledger_url(reference))


# --- Receive -------------------------------------------------------------------------


def receive_view(request):
    """One product picked in the autocomplete: booked at once (as before scan mode).
    Scanned or typed lines: a preview, then `receive_apply` on confirmation."""
    _require(request, RECEIVE_STOCK)
    if request.method == "POST" and request.POST.get("step") == "confirm":
        return _receive_confirm(request)
    formset = source = None
    if request.method != "POST":
        form = StockReceiveForm(
            initial={
                "token": uuid.uuid4(),
                "warehouse": request.session.get(LAST_WAREHOUSE_SESSION_KEY),
            },
            user=request.user,
        )
    else:
        form = StockReceiveForm(request.POST, user=request.user)
        scanned = not request.POST.get("product")
        if scanned:
            formset = ReceiveLineFormSet(request.POST, prefix="lines")
            source = LinesSourceForm(request.POST, request.FILES or None)
        if form.is_valid() and scanned:
            return _receive_lines(request, form, formset, source)
        if form.is_valid():
            data = form.cleaned_data
            request.session[LAST_WAREHOUSE_SESSION_KEY] = data["warehouse"].code
            token = str(data["token"])
            reference = Reference(ReferenceType.MANUAL, data["delivery_note"] or f"receive-{token}")
            try:
                result = services.stock_receive(
                    sku=data["product"].sku,
                    warehouse=data["warehouse"].code,
                    quantity=data["quantity"],
                    actor=actor_for_user(request.user),
                    reference=reference,
                    reason=data["reason"],
                    idempotency_key=f"admin-receive:{token}",
                )
            except errors.InventoryError as exc:
                messages.error(request, exc.message)
            else:
                if result.replayed:
                    messages.info(request, "This receipt was already saved; nothing was added.")
                else:
                    [row] = result.transactions
                    messages.success(
                        request,
                        f"Received {data['quantity']} x {data['product'].sku} into "
                        f"{data['warehouse'].code}: on hand is now {row.on_hand_after}.",
                    )
                return HttpResponseRedirect(reverse("admin:backoffice_receive"))
    return _receive_form_response(request, form, formset, source)


def _receive_form_response(request, form, formset=None, source=None):
    return _render(
        request,
        "backoffice/receive.html",
        "Receive stock",
        {
            "form": form,
            "formset": formset or ReceiveLineFormSet(prefix="lines"),
            "source": source or LinesSourceForm(),
            "media": form.media,
        },
    )


def _receive_lines(request, form, formset, source):
    formset.is_valid()
    source.is_valid()
    lines, problems = collect_lines(formset, source, min_quantity=1)
    if not problems:
        lines, problems = resolve_lines(lines, formset)
    if problems:
        _errors(request, problems)
        return _receive_form_response(request, form, formset, source)
    data = form.cleaned_data
    request.session[LAST_WAREHOUSE_SESSION_KEY] = data["warehouse"].code
    payload = {
        "warehouse": data["warehouse"].code,
        "delivery_note": data["delivery_note"],
        "reason": data["reason"],
        "receipt_id": str(data["token"]),
        "lines": lines,
    }
    return _receive_preview_response(request, payload)


def _receive_preview_response(request, payload: dict):
    skus = [sku for sku, _ in payload["lines"]]
    products = selectors.products_by_sku(skus)
    rows = selectors.balances_for(payload["warehouse"], skus)
    preview = []
    for sku, quantity in payload["lines"]:
        on_hand = rows[sku].on_hand if sku in rows else 0
        preview.append(
            {
                "sku": sku,
                "name": products[sku].name if sku in products else "",
                "quantity": quantity,
                "on_hand": on_hand,
                "after": on_hand + quantity,
            }
        )
    return _render(
        request,
        "backoffice/receive_preview.html",
        "Receive stock: check and confirm",
        {
            "payload": payload,
            "preview": preview,
            "units": sum(quantity for _, quantity in payload["lines"]),
            "confirm_form": ConfirmForm(initial={"payload": sign_payload(payload)}),
        },
    )


def _receive_confirm(request):
    confirm = ConfirmForm(request.POST)
    if not confirm.is_valid():
        _errors(request, confirm.errors.get("payload", []))
        return HttpResponseRedirect(reverse("admin:backoffice_receive"))
    payload = confirm.cleaned_data["payload"]
    warehouse = payload["warehouse"]
    require_warehouses(request.user, warehouse)  # assignments may change after the preview
    receipt_id = payload["receipt_id"]
    reference = Reference(ReferenceType.MANUAL, payload["delivery_note"] or f"receive-{receipt_id}")
    try:
        result = receive_apply(
            warehouse=warehouse,
            lines=[ReceiveLine(sku, quantity) for sku, quantity in payload["lines"]],
            reference=reference,
            reason=payload["reason"],
            actor=actor_for_user(request.user),
            receipt_id=receipt_id,
        )
    except errors.InventoryError as exc:
        messages.error(request, f"{exc.message} Nothing was received.")
        return _receive_preview_response(request, payload)
    units = sum(quantity for _, quantity in payload["lines"])
    if result.replayed:
        messages.info(request, "This receipt was already saved; nothing was added.")
    else:
        messages.success(
            request,
            f"Received {units} unit(s) of {len(payload['lines'])} SKU(s) into {warehouse}.",
        )
    return HttpResponseRedirect(ledger_url(reference))


# --- Bulk receive (CSV upload) -------------------------------------------------------
#
# The same service as `manage.py bulk_receive`. Mounted from inventory_site/urls.py at
# admin/bulk-receive/, wrapped in `admin.site.admin_view` (staff login) and guarded by
# the `backoffice.receive_stock` permission, the one the single *Receive stock* page
# checks (Warehouse staff and Inventory managers; not Purchasing, whose
# `inventory.change_inventory` is only for reorder settings); only a user who acts in
# all warehouses (`backoffice.access`) may use it, since a file may name any warehouse.
# The upload is read as a stream (Django spools big files to disk), so memory stays
# flat; very large files are better run with the command, which has no request
# timeout (docs/BULK.md).


BULK_PREVIEW_DIR = "bulk-previews"
BULK_PREVIEW_MAX_AGE = 3600


def _bulk_preview_dir():
    import pathlib

    from django.conf import settings

    path = pathlib.Path(getattr(settings, "BULK_PREVIEW_ROOT", settings.BASE_DIR / "var")) / (
        BULK_PREVIEW_DIR
    )
    path.mkdir(parents=True, exist_ok=True)
    return path


def bulk_receive_view(request):
    """The page posts `step=preview` first: a dry run of the file, kept on disk (an
    hour), with a button to apply exactly that file (`step=confirm`, signed). A post
    without `step` (scripts) applies at once, as before."""
    _require(request, RECEIVE_STOCK)
    require_all_warehouses(request.user)
    result = None
    format_error = None
    confirm_token = None
    step = request.POST.get("step", "")
    if request.method == "POST" and step == "confirm":
        return _bulk_confirm(request)
    if request.method == "POST":
        form = BulkReceiveForm(request.POST, request.FILES)
        if form.is_valid() and connection.vendor != "postgresql":
            format_error = "Bulk receive needs PostgreSQL; the embedded SQLite cannot run it."
        elif form.is_valid():
            data = form.cleaned_data
            preview = step == "preview" and not data["dry_run"]
            result, format_error = _bulk_run(
                request,
                data["file"].file,
                name=data["file"].name,
                reference=data["reference"],
                reference_type=data["reference_type"],
                skip_invalid=data["skip_invalid"],
                dry_run=data["dry_run"] or preview,
            )
            if preview and result is not None and (result.ok or data["skip_invalid"]):
                confirm_token = _bulk_keep(data)
    else:
        form = BulkReceiveForm()
    context = {
        **admin.site.each_context(request),
        "title": "Bulk receive",
        "form": form,
        "result": result,
        "format_error": format_error,
        "confirm_token": confirm_token,
    }
    return TemplateResponse(request, "admin/inventory/bulk_receive.html", context)


def _bulk_run(request, binary, *, name, reference, reference_type, skip_invalid, dry_run):
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        result = services.stock_receive_bulk(
            source=text,
            actor=actor_for_user(request.user),
            reference=reference or None,
            reference_type=reference_type,
            reason=f"bulk receive upload {name}"[:200],
            atomic=not skip_invalid,
            dry_run=dry_run,
        )
    except errors.InventoryError as exc:
        return None, f"{exc.message} Nothing was applied."
    finally:
        text.detach()
    # A dry run applies nothing: what confirming would apply is every good row.
    result.good = max(result.rows - result.invalid - result.already_applied, 0)
    _bulk_report(request, result)
    return result, None


def _bulk_keep(data) -> str:
    """Keep the previewed file for its confirmation; returns the signed token."""
    import tempfile

    upload = data["file"]
    upload.seek(0)
    with tempfile.NamedTemporaryFile(dir=_bulk_preview_dir(), suffix=".csv", delete=False) as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return sign_payload(
        {
            "file": out.name.rsplit("/", 1)[-1],
            "name": upload.name,
            "reference": data["reference"],
            "reference_type": data["reference_type"],
            "skip_invalid": data["skip_invalid"],
        }
    )


def _bulk_confirm(request):
    from django.core import signing

    from .forms import SIGNING_SALT

    try:
        kept = signing.loads(
            request.POST.get("token", ""), salt=SIGNING_SALT, max_age=BULK_PREVIEW_MAX_AGE
        )
        path = _bulk_preview_dir() / kept["file"]
        handle = open(path, "rb")  # noqa: SIM115 - closed below, then deleted
    except (signing.BadSignature, KeyError, OSError):
        messages.error(request, "The preview expired or was altered; upload the file again.")
        return HttpResponseRedirect(reverse("admin-bulk-receive"))
    try:
        result, format_error = _bulk_run(
            request,
            handle,
            name=kept["name"],
            reference=kept["reference"],
            reference_type=kept["reference_type"],
            skip_invalid=kept["skip_invalid"],
            dry_run=False,
        )
    finally:
        handle.close()
        path.unlink(missing_ok=True)
    context = {
        **admin.site.each_context(request),
        "title": "Bulk receive",
        "form": BulkReceiveForm(),
        "result": result,
        "format_error": format_error,
        "confirm_token": None,
    }
    return TemplateResponse(request, "admin/inventory/bulk_receive.html", context)


def _bulk_report(request, result: services.BulkReceiveResult) -> None:
    counts = (
        f"{result.rows} rows: {result.applied} applied, "
        f"{result.already_applied} already applied earlier, {result.invalid} bad."
    )
    if result.dry_run:
        messages.info(
            request,
            f"Preview, nothing applied yet: {result.good} rows would be applied, "
            f"{result.already_applied} were applied earlier, {result.invalid} bad "
            f"({result.rows} rows read).",
        )
    elif result.ok:
        messages.success(request, f"Received. {counts}")
    elif result.atomic:
        messages.error(request, f"Nothing applied: fix the bad rows below. {counts}")
    elif result.applied:
        messages.warning(request, f"{result.applied} rows applied; bad rows below. {counts}")
    else:
        messages.warning(request, f"No rows applied; bad rows below. {counts}")
