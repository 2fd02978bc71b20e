"""Finding stock (issue 19): SKU prefix in any case, barcode and name search, sorting,
"my warehouses" by default for restricted staff, CSV export of the filtered list,
readable titles."""

import csv
import io

from django.core.management import call_command
from django.urls import reverse

from backoffice.admin.inventory import EXPORT_COLUMNS
from backoffice.models import StaffWarehouse
from inventory.models import Inventory, Product

from ..conftest import receive
from ..factories import ProductFactory

LIST = reverse("admin:inventory_inventory_changelist")
EXPORT = reverse("admin:inventory_inventory_export")


def listed(response):
    return [(row.product.sku, row.warehouse.code) for row in response.context["cl"].result_list]


def test_sku_prefix_in_any_case_barcode_and_name_find_rows(manager_client, stocked):
    ProductFactory(sku="LAMP-7", name="Desk lamp", barcode="4006381333931")
    receive("LAMP-7", "HAM", 3)
    assert sorted(listed(manager_client.get(LIST, {"q": "a-"}))) == [("A-1", "BER"), ("A-1", "HAM")]
    assert listed(manager_client.get(LIST, {"q": "b"})) == [("B-2", "BER")]
    assert listed(manager_client.get(LIST, {"q": "4006381333931"})) == [("LAMP-7", "HAM")]
    assert listed(manager_client.get(LIST, {"q": "DESK"})) == [("LAMP-7", "HAM")]
    assert listed(manager_client.get(LIST, {"q": "100%_"})) == []  # LIKE wildcards are literal


def test_list_sorts_by_the_useful_columns(manager_client, stocked):
    # list_display (no action checkbox): 0 sku, 1 product, 2 warehouse, 3 on hand, …
    descending = manager_client.get(LIST, {"o": "-3"})
    assert listed(descending)[0] == ("C-3", "BER")
    by_sku = manager_client.get(LIST, {"o": "0.2"})
    assert listed(by_sku) == [("A-1", "BER"), ("A-1", "HAM"), ("B-2", "BER"), ("C-3", "BER")]


def test_restricted_staff_see_their_warehouses_by_default(staff_user, staff_client, stocked):
    StaffWarehouse.objects.filter(user=staff_user, warehouse__code="HAM").delete()
    staff_user._stockroom_warehouse_codes = False
    assert {code for _, code in listed(staff_client.get(LIST))} == {"BER"}
    every = staff_client.get(LIST, {"warehouse": "all"})
    assert {code for _, code in listed(every)} == {"BER", "HAM"}
    assert {code for _, code in listed(staff_client.get(LIST, {"warehouse": "HAM"}))} == {"HAM"}


def test_managers_see_every_warehouse_by_default(manager_client, stocked):
    assert {code for _, code in listed(manager_client.get(LIST))} == {"BER", "HAM"}


def test_csv_export_streams_the_filtered_rows_with_export_inventorys_columns(
    manager_client, stocked
):
    response = manager_client.get(EXPORT, {"q": "a-", "warehouse": "BER"})
    assert response.status_code == 200 and response.streaming
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == list(EXPORT_COLUMNS)
    assert [row[:3] for row in rows[1:]] == [["A-1", "BER", "10"]]
    # The same header as `manage.py export_inventory`.
    out = io.StringIO()
    command = io.BytesIO()

    class Stdout:
        buffer = command

        def write(self, text):
            out.write(text)

        def flush(self):
            pass

    import sys

    real, sys.stdout = sys.stdout, Stdout()
    try:
        call_command("export_inventory", stderr=io.StringIO())
    finally:
        sys.stdout = real
    assert command.getvalue().decode().splitlines()[0] == ",".join(EXPORT_COLUMNS)


def test_export_needs_view_permission(no_role_client, stocked):
    assert no_role_client.get(EXPORT).status_code == 403


def test_titles_read_sku_at_warehouse(manager_client, stocked):
    row = Inventory.objects.get(product__sku="A-1", warehouse__code="BER")
    page = manager_client.get(reverse("admin:inventory_inventory_change", args=[row.pk]))
    text = page.content.decode()
    assert "A-1 @ BER" in text
    assert str(row.pk) not in text.split("<title>")[1].split("</title>")[0]
    assert Product.objects.get(sku="A-1").barcode is None


def test_sorting_a_huge_list_is_refused_with_a_hint(manager_client, stocked, monkeypatch):
    from backoffice.admin import inventory as inventory_admin

    monkeypatch.setattr(inventory_admin, "SORT_MAX_ROWS", 2)
    response = manager_client.get(LIST, {"o": "-3"})
    assert response.status_code == 200
    assert any("to sort by a column" in str(m) for m in response.context["messages"])
    # Django orders before it searches: the limit counts the searched rows (2 here).
    narrowed = manager_client.get(LIST, {"o": "3", "q": "a-"})
    assert listed(narrowed) == [("A-1", "HAM"), ("A-1", "BER")]  # on hand 5, then 10
    assert not any("to sort by a column" in str(m) for m in narrowed.context["messages"])
