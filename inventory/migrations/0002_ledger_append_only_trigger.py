"""Make the ledger append-only in the database itself.

PostgreSQL: a row trigger rejects UPDATE and DELETE on the ledger table.
SQLite (the embedded default): triggers do the same.
TRUNCATE is not trapped by a trigger (Django's test flush truncates every table);
deployments keep it from the application's role by privileges (docs/ARCHITECTURE.md).
"""

from django.db import migrations

PG_FORWARD = """
CREATE OR REPLACE FUNCTION inventory_ledger_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'inventory ledger is append-only: %% refused', TG_OP
        USING ERRCODE = 'raise_exception';
END;
$$;
CREATE TRIGGER inventory_ledger_no_update_delete
    BEFORE UPDATE OR DELETE ON inventory_inventorytransaction
    FOR EACH ROW EXECUTE FUNCTION inventory_ledger_append_only();
"""
PG_REVERSE = """
DROP TRIGGER IF EXISTS inventory_ledger_no_update_delete ON inventory_inventorytransaction;
DROP FUNCTION IF EXISTS inventory_ledger_append_only();
"""
SQLITE_FORWARD = [
    """CREATE TRIGGER inventory_ledger_no_update BEFORE UPDATE ON inventory_inventorytransaction
       BEGIN SELECT RAISE(ABORT, 'inventory ledger is append-only: UPDATE refused'); END;""",
    """CREATE TRIGGER inventory_ledger_no_delete BEFORE DELETE ON inventory_inventorytransaction
       BEGIN SELECT RAISE(ABORT, 'inventory ledger is append-only: DELETE refused'); END;""",
]
SQLITE_REVERSE = [
    "DROP TRIGGER IF EXISTS inventory_ledger_no_update;",
    "DROP TRIGGER IF EXISTS inventory_ledger_no_delete;",
]


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_FORWARD)
    elif vendor == "sqlite":
        for statement in SQLITE_FORWARD:
            schema_editor.execute(statement)


def reverse(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        schema_editor.execute(PG_REVERSE)
    elif vendor == "sqlite":
        for statement in SQLITE_REVERSE:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0001_initial")]
    operations = [migrations.RunPython(forward, reverse, elidable=False)]
