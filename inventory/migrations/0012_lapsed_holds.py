"""`stockroom_reserve_orders` treats holds past their expiry as not counting.

A reservation line that comes up short against the locked row's balance looks
at that row's holds whose order's `expires_at` is at or before `p_now` (a new
last parameter: the instant comes from Python, `inventory.clock.now()`, so tests
move time without sleeping and Python and SQL agree). Those units count
nowhere: the order is accepted if they cover it, and the function releases, in
the same statement and transaction, as many of those lapsed holds as the line
needs, earliest expiry first, whole lines at a time: the line's open quantity is
released (status `expired`), a RELEASE ledger row is written (actor
`system:reservation-sweeper`, reason "reservation hold expired", reference the
lapsed order), and the lapsed order becomes `expired` once none of its lines is
open (its lines on other rows wait for the sweeper). The answer lists them
(`released`: sku, code, expires_at, units, order id) for the read model.

Locks: the lapsed orders' reservation rows are locked after the inventory rows
with `FOR NO KEY UPDATE SKIP LOCKED`, which never waits (an order some closer
holds right now is skipped: its closer re-reads its lines under that lock), so
the lock order of inventory/locks.py (reservation, then inventory rows) cannot
cycle. Lines of an order are changed only by whoever holds its reservation row.

Otherwise the same function as 0007 (its text, with these changes). The old
nine-argument signature is dropped; reversing restores it.
"""

from importlib import import_module

from django.db import migrations

PREVIOUS = import_module("inventory.migrations.0007_cheaper_reservation_ids")

SWEEPER = "system:reservation-sweeper"  # inventory.actors.SYSTEM_SWEEPER

REPLACEMENTS = [
    (
        "    p_request_id text\n) RETURNS jsonb",
        "    p_request_id text,\n    p_now timestamptz\n) RETURNS jsonb",
    ),
    (
        "    row_delta bigint[];\n",
        "    row_delta bigint[];\n"
        "    row_touched boolean[];\n"
        "    -- holds past their expiry on a row, loaded when one of its lines comes up\n"
        "    -- short: flattened, per row a cursor (next to release) and an end\n"
        "    row_lp_loaded boolean[]; row_lp_next int[]; row_lp_end int[];\n"
        "    row_lp_free bigint[];\n"
        "    lp_line uuid[] := '{}'; lp_res uuid[] := '{}'; lp_order text[] := '{}';\n"
        "    lp_exp timestamptz[] := '{}'; lp_qty bigint[] := '{}'; n_lp int := 0; m int;\n"
        "    lp record; n_rows int; n_rel int := 0;\n",
    ),
    (
        "    l_res_after bigint[] := '{}'; l_order int[] := '{}';\n",
        "    l_res_after bigint[] := '{}'; l_order int[] := '{}';\n"
        "    l_type text[] := '{}'; l_ref text[] := '{}'; l_line uuid[] := '{}';\n"
        "    l_res uuid[] := '{}'; l_exp timestamptz[] := '{}';\n"
        "    rel_lines uuid[]; rel_res uuid[]; v_released jsonb := '[]';\n",
    ),
    (
        "                                  'ledger', '[]'::jsonb, 'at', now_ts);",
        "                                  'ledger', '[]'::jsonb, 'released', '[]'::jsonb,\n"
        "                                  'at', now_ts);",
    ),
    (
        "    -- 3. Allocate each new order, all lines or none, in the order given.\n",
        "    n_rows := greatest(coalesce(array_length(row_ids, 1), 0), 1);\n"
        "    row_touched := array_fill(false, ARRAY[n_rows]);\n"
        "    row_lp_loaded := array_fill(false, ARRAY[n_rows]);\n"
        "    row_lp_next := array_fill(0, ARRAY[n_rows]);\n"
        "    row_lp_end := array_fill(0, ARRAY[n_rows]);\n"
        "    row_lp_free := array_fill(0::bigint, ARRAY[n_rows]);\n"
        "\n"
        "    -- 3. Allocate each new order, all lines or none, in the order given.\n",
    ),
    (
        """                    avail := row_on_hand[k] - row_reserved[k] - row_delta[k] + row_allow[k];
                    IF p_qtys[j] > avail THEN
                        v_short := coalesce(v_short, '[]') || jsonb_build_object(
                            'sku', p_skus[j], 'warehouse', p_codes[j],
                            'requested', p_qtys[j], 'available', greatest(avail, 0));
                    END IF;
""",
        """                    avail := row_on_hand[k] - row_reserved[k] - row_delta[k] + row_allow[k];
                    IF p_qtys[j] > avail AND NOT row_lp_loaded[k] THEN
                        -- Holds past their expiry on this row count nowhere. Lock
                        -- their orders, SKIP LOCKED (never waits: an order being
                        -- closed right now is left to its closer).
                        row_lp_loaded[k] := true;
                        row_lp_next[k] := n_lp + 1;
                        FOR lp IN
                            SELECT x.line_id, x.res_id, x.order_id, x.expires_at, x.open
                            FROM (
                                SELECT rl.id AS line_id, lr.id AS res_id, lr.order_id,
                                       lr.expires_at,
                                       rl.quantity - rl.quantity_fulfilled
                                           - rl.quantity_released AS open
                                FROM inventory_reservationline rl
                                JOIN inventory_reservation lr ON lr.id = rl.reservation_id
                                WHERE rl.inventory_id = row_ids[k] AND rl.status = 'active'
                                  AND lr.status = 'active' AND lr.expires_at <= p_now
                                ORDER BY lr.expires_at, rl.id
                                FOR NO KEY UPDATE OF lr SKIP LOCKED
                            ) AS x
                            WHERE x.open > 0
                        LOOP
                            n_lp := n_lp + 1;
                            lp_line[n_lp] := lp.line_id;
                            lp_res[n_lp] := lp.res_id;
                            lp_order[n_lp] := lp.order_id;
                            lp_exp[n_lp] := lp.expires_at;
                            lp_qty[n_lp] := lp.open;
                            row_lp_free[k] := row_lp_free[k] + lp.open;
                        END LOOP;
                        row_lp_end[k] := n_lp;
                    END IF;
                    IF p_qtys[j] > avail + row_lp_free[k] THEN
                        v_short := coalesce(v_short, '[]') || jsonb_build_object(
                            'sku', p_skus[j], 'warehouse', p_codes[j],
                            'requested', p_qtys[j],
                            'available', greatest(avail + row_lp_free[k], 0));
                    END IF;
""",
    ),
    (
        """                    k := line_row[j];
                    row_delta[k] := row_delta[k] + p_qtys[j];
                    n_acc := n_acc + 1;
                    l_row[n_acc] := k;
                    l_qty[n_acc] := p_qtys[j];
                    l_res_after[n_acc] := row_reserved[k] + row_delta[k];
                    l_order[n_acc] := i;
""",
        """                    k := line_row[j];
                    avail := row_on_hand[k] - row_reserved[k] - row_delta[k] + row_allow[k];
                    -- Release lapsed holds on this row, earliest first, until the line fits.
                    WHILE p_qtys[j] > avail LOOP
                        m := row_lp_next[k];
                        IF m < 1 OR m > row_lp_end[k] THEN
                            RAISE EXCEPTION 'stockroom_reserve_orders: lapsed holds exhausted';
                        END IF;
                        row_lp_next[k] := m + 1;
                        row_delta[k] := row_delta[k] - lp_qty[m];
                        row_lp_free[k] := row_lp_free[k] - lp_qty[m];
                        avail := avail + lp_qty[m];
                        n_acc := n_acc + 1;
                        l_row[n_acc] := k;
                        l_qty[n_acc] := -lp_qty[m];
                        l_res_after[n_acc] := row_reserved[k] + row_delta[k];
                        l_order[n_acc] := 0;
                        l_type[n_acc] := 'RELEASE';
                        l_ref[n_acc] := lp_order[m];
                        l_line[n_acc] := lp_line[m];
                        l_res[n_acc] := lp_res[m];
                        l_exp[n_acc] := lp_exp[m];
                        n_rel := n_rel + 1;
                    END LOOP;
                    row_touched[k] := true;
                    row_delta[k] := row_delta[k] + p_qtys[j];
                    n_acc := n_acc + 1;
                    l_row[n_acc] := k;
                    l_qty[n_acc] := p_qtys[j];
                    l_res_after[n_acc] := row_reserved[k] + row_delta[k];
                    l_order[n_acc] := i;
                    l_type[n_acc] := 'RESERVE';
                    l_ref[n_acc] := p_order_ids[i];
                    -- (set, not left out: an empty array assigned first at n would
                    -- start at n, and unnest would misalign it with the others)
                    l_line[n_acc] := NULL;
                    l_res[n_acc] := NULL;
                    l_exp[n_acc] := NULL;
""",
    ),
    (
        "            FROM unnest(row_ids, row_delta) WITH ORDINALITY AS d(id, delta, rpos)\n"
        "            WHERE inv.id = d.id AND d.delta <> 0\n",
        "            FROM unnest(row_ids, row_delta, row_touched) WITH ORDINALITY\n"
        "                 AS d(id, delta, touched, rpos)\n"
        "            WHERE inv.id = d.id AND d.touched\n",
    ),
    (
        """                   row_product[l.k], row_warehouse[l.k], 'RESERVE', 0, l.qty,
                   row_on_hand[l.k], l.res_after, 'order', p_order_ids[l.o], '',
                   now_ts, p_actor, p_request_id
            FROM unnest(l_row, l_qty, l_res_after, l_order) WITH ORDINALITY
                 AS l(k, qty, res_after, o, n)
            RETURNING id, product_id, warehouse_id, reserved_delta, on_hand_after,
                      reserved_after, reference_id
        )
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   id, product_id, warehouse_id, reserved_delta, on_hand_after,
                   reserved_after, reference_id)), '[]')
        INTO v_ledger FROM inserted;
""",
        f"""                   row_product[l.k], row_warehouse[l.k], l.t, 0, l.qty,
                   row_on_hand[l.k], l.res_after, 'order', l.ref,
                   CASE WHEN l.t = 'RELEASE' THEN 'reservation hold expired' ELSE '' END,
                   now_ts, CASE WHEN l.t = 'RELEASE' THEN '{SWEEPER}' ELSE p_actor END,
                   p_request_id
            FROM unnest(l_row, l_qty, l_res_after, l_type, l_ref) WITH ORDINALITY
                 AS l(k, qty, res_after, t, ref, n)
            RETURNING id, product_id, warehouse_id, reserved_delta, on_hand_after,
                      reserved_after, reference_id, type
        )
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   id, product_id, warehouse_id, reserved_delta, on_hand_after,
                   reserved_after, reference_id)) FILTER (WHERE type = 'RESERVE'), '[]')
        INTO v_ledger FROM inserted;
""",
    ),
    (
        "        FROM unnest(l_row, l_qty, l_order) WITH ORDINALITY AS l(k, qty, o, n);\n",
        """        FROM unnest(l_row, l_qty, l_order, l_type) WITH ORDINALITY AS l(k, qty, o, t, n)
        WHERE l.t = 'RESERVE';

        -- The lapsed holds released above: their lines, then their orders once
        -- nothing of them is open (closed as the sweeper would).
        IF n_rel > 0 THEN
            SELECT array_agg(l.line), array_agg(DISTINCT l.res) INTO rel_lines, rel_res
            FROM unnest(l_type, l_line, l_res) AS l(t, line, res) WHERE l.t = 'RELEASE';
            UPDATE inventory_reservationline
               SET quantity_released = quantity - quantity_fulfilled,
                   status = CASE WHEN quantity_fulfilled > 0 THEN 'fulfilled' ELSE 'expired' END
             WHERE id = ANY(rel_lines);
            UPDATE inventory_reservation er
               SET status = CASE WHEN EXISTS (
                                SELECT 1 FROM inventory_reservationline x
                                WHERE x.reservation_id = er.id AND x.quantity_fulfilled > 0)
                            THEN 'fulfilled' ELSE 'expired' END,
                   updated_at = now_ts
             WHERE er.id = ANY(rel_res)
               AND NOT EXISTS (SELECT 1 FROM inventory_reservationline x
                               WHERE x.reservation_id = er.id AND x.status = 'active');
            SELECT jsonb_agg(jsonb_build_array(row_sku[l.k], row_code[l.k], l.e, -l.qty, l.ref))
              INTO v_released
            FROM unnest(l_type, l_row, l_exp, l_qty, l_ref) AS l(t, k, e, qty, ref)
            WHERE l.t = 'RELEASE';
        END IF;
""",
    ),
    (
        "        'orders', v_orders, 'changes', v_changes, 'ledger', v_ledger, 'at', now_ts);",
        "        'orders', v_orders, 'changes', v_changes, 'ledger', v_ledger,\n"
        "        'released', v_released, 'at', now_ts);",
    ),
]

DROP_OLD = """
DROP FUNCTION IF EXISTS stockroom_reserve_orders(
    text[], text[], timestamptz[], int[], text[], text[], bigint[], text, text);
"""
DROP_NEW = """
DROP FUNCTION IF EXISTS stockroom_reserve_orders(
    text[], text[], timestamptz[], int[], text[], text[], bigint[], text, text, timestamptz);
"""


def reserve_function() -> str:
    text = PREVIOUS.reserve_function()
    for old, new in REPLACEMENTS:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    return text


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_OLD)
        schema_editor.execute(reserve_function().replace("%", "%%"))


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP_NEW)
        schema_editor.execute(PREVIOUS.reserve_function().replace("%", "%%"))


class Migration(migrations.Migration):
    dependencies = [("inventory", "0011_close_confirm")]

    operations = [migrations.RunPython(forward, reverse, elidable=False)]
