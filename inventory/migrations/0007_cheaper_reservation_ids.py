"""Cheaper ids for a reservation batch, and no reservation (status, created_at) index.

* `stockroom_uuid7()` costs ~4.6 us a call here (a random UUID from OpenSSL, then
  byte surgery); a 500-order batch called it 1,500 times. The reserve function
  now takes one UUIDv7 prefix (48-bit millisecond time, version, 12 random bits)
  and one random 62-bit base per call and numbers its rows from there
  (`stockroom_uuid7_at`, inlined by the planner): still RFC 9562 version-7 ids,
  time-ordered, unique within the batch by construction and across batches by
  64 random bits (RFC 9562's "fixed-length dedicated counter" method).
* `reservation_status_time` served no query (the admin lists reservations by id,
  the API reads them by order id) and cost every reserved order an index insert.

Same function signature and answer as 0006; only the id expressions change.
"""

from importlib import import_module

from django.db import migrations

PREVIOUS = import_module("inventory.migrations.0006_lean_reservation_writes")

HELPERS = r"""
CREATE OR REPLACE FUNCTION stockroom_uuid7_prefix() RETURNS text
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
           || '7' || lpad(to_hex(floor(random() * 4096)::int), 3, '0')
$$;
CREATE OR REPLACE FUNCTION stockroom_uuid7_at(prefix text, base bigint, n bigint) RETURNS uuid
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (prefix || to_hex((-9223372036854775808)::bigint
                             | ((base + n) & 4611686018427387903)))::uuid
$$;
"""

REPLACEMENTS = [
    (
        "    now_ts timestamptz := clock_timestamp();\n",
        "    now_ts timestamptz := clock_timestamp();\n"
        "    id_prefix text := stockroom_uuid7_prefix();\n"
        "    id_base bigint := floor(random() * 4611686018427387903)::bigint;\n",
    ),
    (
        "        SELECT stockroom_uuid7(), o.order_id, 'active',",
        "        SELECT stockroom_uuid7_at(id_prefix, id_base, o.n), o.order_id, 'active',",
    ),
    (
        "        FROM unnest(p_order_ids, p_fingerprints, p_expires_at)\n"
        "             AS o(order_id, fingerprint, expires_at)",
        "        FROM unnest(p_order_ids, p_fingerprints, p_expires_at) WITH ORDINALITY\n"
        "             AS o(order_id, fingerprint, expires_at, n)",
    ),
    (
        "            SELECT stockroom_uuid7(), row_product[l.k], row_warehouse[l.k], 'RESERVE',",
        "            SELECT stockroom_uuid7_at(id_prefix, id_base, n_orders + l.n),\n"
        "                   row_product[l.k], row_warehouse[l.k], 'RESERVE',",
    ),
    (
        "            FROM unnest(l_row, l_qty, l_res_after, l_order) AS l(k, qty, res_after, o)",
        "            FROM unnest(l_row, l_qty, l_res_after, l_order) WITH ORDINALITY\n"
        "                 AS l(k, qty, res_after, o, n)",
    ),
    (
        "        SELECT stockroom_uuid7(), new_ids[l.o], row_ids[l.k],",
        "        SELECT stockroom_uuid7_at(id_prefix, id_base, n_orders + n_acc + l.n),\n"
        "               new_ids[l.o], row_ids[l.k],",
    ),
    (
        "        FROM unnest(l_row, l_qty, l_order) AS l(k, qty, o);",
        "        FROM unnest(l_row, l_qty, l_order) WITH ORDINALITY AS l(k, qty, o, n);",
    ),
]


def reserve_function() -> str:
    text = PREVIOUS.RESERVE
    for old, new in REPLACEMENTS:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(HELPERS.replace("%", "%%"))
        schema_editor.execute(reserve_function().replace("%", "%%"))


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS.RESERVE.replace("%", "%%"))


class Migration(migrations.Migration):
    dependencies = [("inventory", "0006_lean_reservation_writes")]

    operations = [
        migrations.RemoveIndex(model_name="reservation", name="reservation_status_time"),
        migrations.RunPython(forward, reverse, elidable=False),
    ]
