"""Permissions for the state moves and the returns dock (issue #15 items 4 and 6).

`backoffice.move_stock_state` (sellable / damaged / quality control),
`backoffice.write_off_stock` (units leave on hand from damaged or quality
control) and `backoffice.book_return` (the returns dock). `setup_roles` grants
them (backoffice/roles.py).

And the index the start page's "quality control waiting for a decision" panel
reads (`backoffice.selectors.quality_control_waiting`): a partial index of the
few stock rows holding quality-control units, per warehouse. It lives here, with
the page that reads it (this part's migration numbers are the back office's);
its predicate names only `quality_control`, which reservations never change, so
their updates stay HOT.
"""

from django.db import migrations

PERMISSIONS = [
    ("cycle_count", "Can perform cycle counts (stock adjustments)"),
    ("transfer_stock", "Can transfer stock between warehouses"),
    ("receive_stock", "Can receive stock directly"),
    ("act_in_all_warehouses", "Can act in all warehouses (whatever Works at says)"),
    ("move_stock_state", "Can move stock between sellable, damaged and quality control"),
    ("write_off_stock", "Can write off damaged or quality-control stock"),
    ("book_return", "Can book customer returns at the returns dock"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0003_act_in_all_warehouses"),
        ("inventory", "0017_bundles"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="staffaction",
            options={
                "default_permissions": (),
                "managed": False,
                "permissions": PERMISSIONS,
                "verbose_name": "back-office action",
            },
        ),
        # Plain SQL both engines take (SQLite has partial indexes too).
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS inventory_qc_waiting "
            "ON inventory_inventory (warehouse_id, product_id) WHERE quality_control > 0",
            "DROP INDEX IF EXISTS inventory_qc_waiting",
        ),
    ]
