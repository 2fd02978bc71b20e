"""Stock rows are born with their product's backorder allowance, set by the database.

A BEFORE INSERT trigger on inventory_inventory reads the product row FOR SHARE
and sets `backorder_allowance` from its policy (0 for normal, else the
backorder limit), whatever the INSERT said. FOR SHARE conflicts with the UPDATE
of a stock-policy change (`product_set_stock_policy`): a change in flight
commits before the row is born (and the row gets the new allowance); a change
that starts later waits until the new row is committed and then updates it with
every other row of the product. So no path (the ORM, bulk receive's set-based
INSERT, reconcile --fix, raw SQL in seeds and benchmarks) can create a row with
a stale allowance.

Also the audit table of `reconcile --fix`'s allowance corrections
(`AllowanceCorrection`: the ledger records balance changes only).

The trigger is PostgreSQL only; SQLite (embedded, one writer at a time) has no such race and
`stock_rows_create` copies the allowance there.
"""

import django.db.models.deletion
import uuid6
from django.db import migrations, models

FORWARD = """
CREATE OR REPLACE FUNCTION inventory_allowance_from_product() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    policy_allowance integer;
BEGIN
    SELECT CASE WHEN p.stock_policy = 'normal' THEN 0 ELSE p.backorder_limit END
      INTO policy_allowance
      FROM inventory_product p
     WHERE p.id = NEW.product_id
       FOR SHARE;
    IF FOUND THEN
        NEW.backorder_allowance := policy_allowance;
    END IF;  -- no product: the foreign key refuses the row
    RETURN NEW;
END;
$$;
CREATE TRIGGER inventory_allowance_from_product
    BEFORE INSERT ON inventory_inventory
    FOR EACH ROW EXECUTE FUNCTION inventory_allowance_from_product();
"""

REVERSE = """
DROP TRIGGER IF EXISTS inventory_allowance_from_product ON inventory_inventory;
DROP FUNCTION IF EXISTS inventory_allowance_from_product();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD)


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(REVERSE)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0009_close_order_placed_by")]
    operations = [
        migrations.RunPython(forward, reverse, elidable=False),
        migrations.CreateModel(
            name="AllowanceCorrection",
            fields=[
                (
                    "id",
                    models.UUIDField(
                        default=uuid6.uuid7, editable=False, primary_key=True, serialize=False
                    ),
                ),
                ("old_allowance", models.PositiveIntegerField()),
                ("new_allowance", models.PositiveIntegerField()),
                ("stock_policy", models.CharField(max_length=16)),
                ("reference_id", models.CharField(max_length=100)),
                ("reason", models.TextField()),
                ("created_by", models.CharField(max_length=150)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                (
                    "inventory",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="inventory.inventory",
                    ),
                ),
            ],
            options={"ordering": ["-created_at"]},
        ),
    ]
