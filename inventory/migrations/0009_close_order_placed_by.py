"""`stockroom_close_order` takes who placed the order (`p_placed_by`).

A storefront API client may release or fulfil only orders it placed (the
reservation's `created_by`); the function finds no other order for it, so the
check costs nothing extra and holds under the same row lock. NULL (staff,
commands, operations clients, the expiry sweeper) finds any order.

And a close that finds nothing open leaves the order's status alone: in 0008 a
late whole-order fulfil of a cancelled order answered (and stored) `fulfilled`,
and a sweep racing a cancel stored `expired`, with no stock moved.

Otherwise the same function as 0008 (its text, with those two changes).
"""

from importlib import import_module

from django.db import migrations

PREVIOUS = import_module("inventory.migrations.0008_close_order_function")

OLD_SIGNATURE = "stockroom_close_order(text, text, text, text, text, text)"

REPLACEMENTS = [
    (
        "    p_request_id text\n) RETURNS jsonb",
        "    p_request_id text,\n    p_placed_by text DEFAULT NULL\n) RETURNS jsonb",
    ),
    (
        "    v_status := coalesce(v_status, v_res.status);\n",
        "    IF r_ids IS NULL THEN\n"
        "        v_status := v_res.status;  -- nothing was open, nothing closed\n"
        "    END IF;\n"
        "    v_status := coalesce(v_status, v_res.status);\n",
    ),
    (
        "    WHERE order_id = p_order_id FOR NO KEY UPDATE;",
        "    WHERE order_id = p_order_id AND (p_placed_by IS NULL OR created_by = p_placed_by)\n"
        "    FOR NO KEY UPDATE;",
    ),
]


def close_function() -> str:
    text = PREVIOUS.CLOSE
    for old, new in REPLACEMENTS:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {OLD_SIGNATURE}")
        schema_editor.execute(close_function().replace("%", "%%"))


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS stockroom_close_order(text, text, text, text, text, text, text)"
        )
        schema_editor.execute(PREVIOUS.CLOSE.replace("%", "%%"))


class Migration(migrations.Migration):
    dependencies = [("inventory", "0008_close_order_function")]
    operations = [migrations.RunPython(forward, reverse, elidable=False)]
