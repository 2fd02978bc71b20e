"""The back office's stock-state pages (issue #15): moving units between sellable,
damaged and quality control, and the returns dock.

Thin edges like backoffice/views.py: validate, preview where there are lines, and
call the services (`stock_move_state`, `stock_return`) with the staff user as
actor. A refused operation becomes a message (and, on the dock, an error on its
row) and changes nothing.

Who may do what (backoffice/roles.py): `backoffice.move_stock_state` (warehouse
staff and managers) moves units between sellable, damaged and quality control;
writing units off needs `backoffice.write_off_stock` (managers);
`backoffice.book_return` books returns at the dock. Always only at the
warehouses the user works at (`backoffice.access`).
"""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.urls import reverse

from inventory import errors, services
from inventory.actors import actor_for_user
from inventory.models import Inventory, ReferenceType
from inventory.services import Reference, ReturnLineRequest

from . import selectors
from .access import require_warehouses
from .forms import (
    DISPOSITION_CHOICES,
    ConfirmForm,
    ReturnForm,
    ReturnLineFormSet,
    StateMoveForm,
    collect_return_lines,
    sign_payload,
)
from .models import BOOK_RETURN, MOVE_STOCK_STATE, WRITE_OFF_STOCK
from .views import LAST_WAREHOUSE_SESSION_KEY, _errors, _render, ledger_url

STATE_LABELS = {
    "sellable": "sellable",
    "damaged": "damaged",
    "quality_control": "quality control",
    "written_off": "written off",
}

# --- Moving units between states -------------------------------------------------


def _row_for(warehouse: str | None, sku: str | None, row_id: str | None) -> Inventory | None:
    rows = Inventory.objects.select_related("product", "warehouse")
    try:
        if row_id:
            return rows.filter(pk=uuid.UUID(str(row_id))).first()
    except ValueError:
        return None
    if warehouse and sku:
        product = selectors.products_by_code([sku]).get(sku.strip())
        if product is not None:
            return rows.filter(warehouse__code=warehouse, product=product).first()
    return None


def state_move_view(request):
    """GET ?row=<stock row id>[&from=quality_control]: the form filled in for that row.
    POST: `stock_move_state`, then the ledger rows it wrote."""
    if not request.user.has_perm(MOVE_STOCK_STATE):
        raise PermissionDenied
    may_write_off = request.user.has_perm(WRITE_OFF_STOCK)
    row = None
    if request.method == "POST":
        form = StateMoveForm(request.POST, user=request.user, may_write_off=may_write_off)
        if form.is_valid():
            response = _state_move(request, form)
            if response is not None:
                return response
        row = _row_for(request.POST.get("warehouse"), request.POST.get("sku"), None)
    else:
        row = _row_for(None, None, request.GET.get("row"))
        source = request.GET.get("from", "quality_control")
        initial = {"token": uuid.uuid4(), "from_state": source}
        if row is not None:
            held = {"damaged": row.damaged, "quality_control": row.quality_control}
            initial.update(
                warehouse=row.warehouse.code,
                sku=row.product.sku,
                quantity=held.get(source) or None,
                to_state="sellable" if source != "sellable" else "damaged",
            )
        form = StateMoveForm(initial=initial, user=request.user, may_write_off=may_write_off)
    return _render(
        request,
        "backoffice/state_move.html",
        "Damaged and quality control: move units",
        {"form": form, "row": row, "may_write_off": may_write_off},
    )


def _state_move(request, form):
    data = form.cleaned_data
    warehouse = data["warehouse"].code
    require_warehouses(request.user, warehouse)
    code = data["sku"].strip()
    product = selectors.products_by_code([code]).get(code)
    if product is None:
        form.add_error("sku", "Unknown SKU or barcode.")
        return None
    token = str(data["token"])
    reference = Reference(ReferenceType.MANUAL, f"state-move-{token}")
    try:
        result = services.stock_move_state(
            sku=product.sku,
            warehouse=warehouse,
            from_state=data["from_state"],
            to_state=data["to_state"],
            quantity=data["quantity"],
            reason=data["reason"],
            actor=actor_for_user(request.user),
            reference=reference,
            idempotency_key=f"admin-state-move:{token}",
        )
    except errors.InventoryError as exc:
        messages.error(request, f"{exc.message} Nothing was moved.")
        return None
    request.session[LAST_WAREHOUSE_SESSION_KEY] = warehouse
    if result.replayed:
        messages.info(request, "This move was already saved; nothing was moved again.")
    else:
        messages.success(
            request,
            f"Moved {data['quantity']} x {product.sku} in {warehouse} from "
            f"{STATE_LABELS[data['from_state']]} to {STATE_LABELS[data['to_state']]}.",
        )
    return HttpResponseRedirect(ledger_url(reference))


# --- The returns dock ----------------------------------------------------------------


def shipped_lines(order_id: str) -> list[dict]:
    """What the order shipped per SKU, what came back already and what may still come
    back (`services.shipped_and_returned`, the rule `stock_return` enforces)."""
    shipped, returned = services.shipped_and_returned([order_id])
    products = selectors.products_by_sku([sku for _, sku in shipped])
    lines = []
    for (_, sku), units in sorted(shipped.items()):
        if units <= 0:
            continue
        back = returned.get((order_id, sku), 0)
        lines.append(
            {
                "sku": sku,
                "name": products[sku].name if sku in products else "",
                "shipped": units,
                "returned": back,
                "returnable": max(units - back, 0),
            }
        )
    return lines


def returns_view(request):
    """GET ?order=<order id>: the dock for that order (what shipped); without: a return
    with no order. POST step=preview: the lines checked against what shipped; POST
    step=confirm: `stock_return` under the return id made when the page was shown."""
    if not request.user.has_perm(BOOK_RETURN):
        raise PermissionDenied
    if request.method == "POST" and request.POST.get("step") == "confirm":
        return _return_confirm(request)
    if request.method == "POST" and request.POST.get("step") == "edit":
        return _return_edit(request)
    order_id = (request.POST.get("order_id") or request.GET.get("order") or "").strip()[:100]
    form = ReturnForm(
        request.POST or None,
        user=request.user,
        initial={
            "order_id": order_id,
            "return_id": f"dock-{uuid.uuid4().hex}",
            "warehouse": request.session.get(LAST_WAREHOUSE_SESSION_KEY),
        },
    )
    formset = ReturnLineFormSet(request.POST or None, prefix="lines")
    if request.method == "POST":
        form_ok = form.is_valid()
        formset.is_valid()
        lines, problems = collect_return_lines(formset)
        if form_ok and not problems:
            lines, problems = _resolve_return_lines(lines, formset)
        if form_ok and not problems:
            data = form.cleaned_data
            request.session[LAST_WAREHOUSE_SESSION_KEY] = data["warehouse"].code
            payload = {
                "warehouse": data["warehouse"].code,
                "order_id": data["order_id"],
                "return_id": data["return_id"],
                "reason": data["reason"],
                "lines": lines,
            }
            problems = _bound_errors_on_rows(payload, formset)
            if not problems:
                return _return_preview_response(request, payload)
        _errors(request, problems)
    shipped = shipped_lines(order_id) if order_id else None
    return _render(
        request,
        "backoffice/returns.html",
        "Returns dock",
        {
            "form": form,
            "formset": formset,
            "order_id": order_id,
            "shipped": shipped,
            "dispositions": DISPOSITION_CHOICES,
        },
    )


def _return_edit(request):
    """ "Change the lines" on the preview: the form again with the previewed lines, the
    same return id (so a return confirmed meanwhile still replays)."""
    confirm = ConfirmForm(request.POST)
    if not confirm.is_valid():
        _errors(request, confirm.errors.get("payload", []))
        return HttpResponseRedirect(reverse("admin:backoffice_returns"))
    payload = confirm.cleaned_data["payload"]
    form = ReturnForm(
        user=request.user,
        initial={key: payload[key] for key in ("warehouse", "order_id", "return_id", "reason")},
    )
    formset = ReturnLineFormSet(
        prefix="lines",
        initial=[
            {"sku": sku, "quantity": quantity, "disposition": disposition}
            for sku, quantity, disposition in payload["lines"]
        ],
    )
    order_id = payload["order_id"]
    return _render(
        request,
        "backoffice/returns.html",
        "Returns dock",
        {
            "form": form,
            "formset": formset,
            "order_id": order_id,
            "shipped": shipped_lines(order_id) if order_id else None,
            "dispositions": DISPOSITION_CHOICES,
        },
    )


def _resolve_return_lines(lines, formset):
    """Codes (SKU in any case, barcode) -> SKUs, merging lines that name the same SKU
    and disposition; unknown codes are errors on their row."""
    from .views import resolve_lines

    products = selectors.products_by_code(code for code, _, _ in lines)
    unknown = [code for code, _, _ in lines if code not in products]
    if unknown:
        resolve_lines([(code, 1) for code in unknown], formset)  # marks the rows
        return [], [errors.UnknownSku(unknown).message]
    merged: dict[tuple[str, str], int] = {}
    for code, quantity, disposition in lines:
        key = (products[code].sku, disposition)
        merged[key] = merged.get(key, 0) + quantity
    return [[sku, quantity, disposition] for (sku, disposition), quantity in merged.items()], []


def _bound_errors_on_rows(payload: dict, formset) -> list[str]:
    """Lines bringing back more than the order shipped: the error on each such row of
    the form (staff correct the number and preview again); returns the messages."""
    refused = {item["sku"]: item["error"] for item in _return_preview(payload) if item["error"]}
    if not refused:
        return []
    codes = {
        form: ((getattr(form, "cleaned_data", None) or {}).get("sku") or "").strip()
        for form in formset.forms
    }
    products = selectors.products_by_code(codes.values())
    for form, code in codes.items():
        product = products.get(code)
        if product is not None and product.sku in refused:
            form.add_error("quantity", refused[product.sku])
    return [
        "Some lines bring back more than the order shipped (the rows marked below). "
        "Correct them, or book those goods as a return without an order.",
        *refused.values(),
    ]


def _return_preview(payload: dict, refused: dict[str, dict] | None = None) -> list[dict]:
    """Preview rows; with an order, each SKU's returnable units and an error on every
    row that brings back more (`refused`: the service's answer, by SKU)."""
    skus = [sku for sku, _, _ in payload["lines"]]
    products = selectors.products_by_sku(skus)
    rows = selectors.balances_for(payload["warehouse"], skus)
    left = {}
    if payload["order_id"]:
        left = {line["sku"]: line for line in shipped_lines(payload["order_id"])}
    wanted: dict[str, int] = {}
    for sku, quantity, _ in payload["lines"]:
        wanted[sku] = wanted.get(sku, 0) + quantity
    labels = dict(DISPOSITION_CHOICES)
    preview = []
    for sku, quantity, disposition in payload["lines"]:
        row = rows.get(sku)
        item = {
            "sku": sku,
            "name": products[sku].name if sku in products else "",
            "quantity": quantity,
            "disposition": labels.get(disposition, disposition),
            "on_hand": row.on_hand if row else 0,
            "error": "",
        }
        if payload["order_id"]:
            shipped = left.get(sku)
            item["returnable"] = shipped["returnable"] if shipped else 0
            if shipped is None:
                item["error"] = f"Order {payload['order_id']} shipped no {sku}."
            elif wanted[sku] > shipped["returnable"]:
                item["error"] = (
                    f"Only {shipped['returnable']} of {sku} can come back on this order "
                    f"(shipped {shipped['shipped']}, returned before {shipped['returned']})."
                )
        if refused and sku in refused and not item["error"]:
            item["error"] = f"Only {refused[sku]['returnable']} of {sku} can come back."
        preview.append(item)
    return preview


def _return_preview_response(request, payload: dict, refused: dict | None = None):
    preview = _return_preview(payload, refused)
    blocked = any(item["error"] for item in preview)
    if blocked:
        messages.error(
            request,
            "Some lines bring back more than the order shipped (see the rows in red). "
            "Go back and correct them, or book them without the order.",
        )
    return _render(
        request,
        "backoffice/returns_preview.html",
        "Return: check and confirm",
        {
            "payload": payload,
            "preview": preview,
            "blocked": blocked,
            "units": sum(quantity for _, quantity, _ in payload["lines"]),
            "confirm_form": ConfirmForm(initial={"payload": sign_payload(payload)}),
        },
    )


def _return_confirm(request):
    confirm = ConfirmForm(request.POST)
    if not confirm.is_valid():
        _errors(request, confirm.errors.get("payload", []))
        return HttpResponseRedirect(reverse("admin:backoffice_returns"))
    payload = confirm.cleaned_data["payload"]
    warehouse = payload["warehouse"]
    require_warehouses(request.user, warehouse)  # assignments may change after the preview
    try:
        result = services.stock_return(
            return_id=payload["return_id"],
            lines=[
                ReturnLineRequest(sku, warehouse, quantity, disposition, payload["order_id"])
                for sku, quantity, disposition in payload["lines"]
            ],
            actor=actor_for_user(request.user),
            reason=payload["reason"],
        )
    except errors.ExceedsFulfilled as exc:
        refused = {line["sku"]: line for line in exc.details.get("lines", [])}
        messages.error(request, f"{exc.message} Nothing was booked.")
        return _return_preview_response(request, payload, refused)
    except errors.InventoryError as exc:
        messages.error(request, f"{exc.message} Nothing was booked.")
        return _return_preview_response(request, payload)
    units = sum(line.quantity for line in result.lines)
    if result.replayed:
        messages.info(request, "This return was already booked; nothing was changed again.")
    else:
        messages.success(
            request,
            f"Return booked in {warehouse}: {units} unit(s) of {len(result.lines)} line(s)"
            + (f" from order {payload['order_id']}." if payload["order_id"] else "."),
        )
    if result.transactions:
        return HttpResponseRedirect(
            ledger_url(Reference(ReferenceType.RETURN, payload["return_id"]))
        )
    return HttpResponseRedirect(reverse("admin:backoffice_returns"))
