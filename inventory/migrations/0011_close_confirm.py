"""Holds that a payment confirms, and closing an order that holds nothing.

`Reservation.confirmed_at` / `confirmed_by`: when and by whom a hold was last
confirmed or extended (POST /reservations/{order_id}/confirm/). A confirmation
changes no stock and writes no ledger row; these columns are its record. The
database default ('') lets the reserve function's INSERT leave `confirmed_by`
out.

`stockroom_close_order` (0009's text, patched):

* takes `p_now`, the instant from Python's `inventory.clock.now()`: a release or
  fulfilment of an active hold whose `expires_at` is at or before `p_now` does
  not ship or release it for the caller. The statement expires it instead, as
  the sweeper would (RELEASE rows by `p_expiry_actor` with `p_expiry_reason`,
  lines and order `expired`), and answers `{"status": "lapsed", ...}`; the
  service raises OrderClosed (409 `order_closed`, status expired). The expiry
  and the refusal are one statement, so one transaction.
* a release or fulfilment that finds nothing open answers
  `{"status": "closed", "order_status": ...}` and changes nothing (the service
  raises OrderClosed); the sweeper (`p_closing_status` 'expired') finding
  nothing open is still a no-op answered 'done'.
* the answered reservation carries `confirmed_at`.

NULL `p_now` skips the lapse check (the sweeper passes its own instant anyway).
"""

from importlib import import_module

from django.db import migrations, models

PREVIOUS = import_module("inventory.migrations.0009_close_order_placed_by")

OLD_SIGNATURE = "stockroom_close_order(text, text, text, text, text, text, text)"
NEW_SIGNATURE = (
    "stockroom_close_order(text, text, text, text, text, text, text, timestamptz, text, text)"
)

REPLACEMENTS = [
    (
        "    p_placed_by text DEFAULT NULL\n) RETURNS jsonb",
        "    p_placed_by text DEFAULT NULL,\n"
        "    p_now timestamptz DEFAULT NULL,\n"
        "    p_expiry_actor text DEFAULT NULL,\n"
        "    p_expiry_reason text DEFAULT NULL\n"
        ") RETURNS jsonb",
    ),
    (
        "    v_status text;\nBEGIN\n",
        "    v_status text;\n    v_lapsed boolean := false;\nBEGIN\n",
    ),
    (
        "    IF NOT FOUND THEN\n"
        "        RETURN jsonb_build_object('status', 'not_found');\n"
        "    END IF;\n",
        "    IF NOT FOUND THEN\n"
        "        RETURN jsonb_build_object('status', 'not_found');\n"
        "    END IF;\n"
        "\n"
        "    -- A hold past its expires_at has lapsed, swept or not: a release or a\n"
        "    -- fulfilment expires it as the sweeper would, and answers 'lapsed'.\n"
        "    IF p_closing_status <> 'expired' AND p_now IS NOT NULL\n"
        "       AND v_res.status = 'active' AND v_res.expires_at <= p_now THEN\n"
        "        v_lapsed := true;\n"
        "        p_type := 'RELEASE';\n"
        "        fulfil := false;\n"
        "        p_closing_status := 'expired';\n"
        "        p_actor := p_expiry_actor;\n"
        "        p_reason := p_expiry_reason;\n"
        "    END IF;\n",
    ),
    (
        "    ) AS x;\n\n    IF r_ids IS NOT NULL THEN\n",
        "    ) AS x;\n"
        "\n"
        "    -- Nothing open: a release or fulfilment is refused (the sweeper's is a no-op).\n"
        "    IF r_ids IS NULL AND p_closing_status <> 'expired' THEN\n"
        "        RETURN jsonb_build_object('status', 'closed', 'order_status', v_res.status);\n"
        "    END IF;\n"
        "\n"
        "    IF r_ids IS NOT NULL THEN\n",
    ),
    (
        "        'status', 'done',\n",
        "        'status', CASE WHEN v_lapsed THEN 'lapsed' ELSE 'done' END,\n",
    ),
    (
        "                                         v_res.created_at, v_res.updated_at),\n",
        "                                         v_res.created_at, v_res.updated_at,\n"
        "                                         v_res.confirmed_at),\n",
    ),
]


def close_function() -> str:
    text = PREVIOUS.close_function()
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
        schema_editor.execute(f"DROP FUNCTION IF EXISTS {NEW_SIGNATURE}")
        schema_editor.execute(PREVIOUS.close_function().replace("%", "%%"))


class Migration(migrations.Migration):
    dependencies = [("inventory", "0010_inventory_allowance_from_product")]
    operations = [
        migrations.AddField(
            model_name="reservation",
            name="confirmed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reservation",
            name="confirmed_by",
            field=models.CharField(blank=True, db_default="", default="", max_length=150),
        ),
        migrations.RunPython(forward, reverse, elidable=False),
    ]
