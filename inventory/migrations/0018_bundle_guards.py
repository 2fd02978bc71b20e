"""Bundles (issue #16): the database guards of the model.

A bundle has no stock rows (trigger on inventory rows), components are never
bundles and belong to a bundle (trigger on components), and a product does not
change kind while it has stock rows, is a component or has components (trigger
on `is_bundle`). Loads the frozen copy `sql/0018_bundle_guards.sql` of
`inventory/sql/bundle_guards.sql`; reversing drops them. PostgreSQL only (the
services refuse the same things on the embedded SQLite default).
"""

from pathlib import Path

from django.db import migrations

FROZEN = Path(__file__).resolve().parent / "sql"

DROP = """
DROP TRIGGER IF EXISTS inventory_bundle_has_no_stock ON inventory_inventory;
DROP TRIGGER IF EXISTS inventory_bundle_component_guard ON inventory_bundlecomponent;
DROP TRIGGER IF EXISTS inventory_bundle_flag_guard ON inventory_product;
DROP FUNCTION IF EXISTS inventory_bundle_has_no_stock();
DROP FUNCTION IF EXISTS inventory_bundle_component_guard();
DROP FUNCTION IF EXISTS inventory_bundle_flag_guard();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    text = (FROZEN / "0018_bundle_guards.sql").read_text(encoding="utf-8")
    schema_editor.execute(text.replace("%", "%%"))


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0017_bundles")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
