"""Server-side reservation: one round trip reserves one order, or a whole batch.

`stockroom_reserve_orders(...)` does in one statement what `stock_reserve` does
in Python (see inventory/services/reserve_sql.py for the caller):

1. claims the order ids by inserting their Reservation rows in order-id order
   (`ON CONFLICT DO NOTHING`: an existing id is a retry or a conflict);
2. locks every inventory row the batch needs in one statement, in primary-key
   order (the deadlock rule of inventory/locks.py);
3. allocates orders one after another, each all-or-nothing, against the locked
   balances (available = on_hand - reserved + backorder_allowance);
4. deletes the claims of orders that failed, applies one UPDATE per row with the
   summed quantity (a hot SKU is updated once per batch, not once per order),
   and inserts the ledger rows (with the running balances after each order) and
   the reservation lines.

It returns JSON: per order a status (created, exists, conflict, insufficient,
inactive, missing) with details, the changed rows (for the after-commit cache
write-through) and the ledger rows. Only PostgreSQL; SQLite (the embedded
default) runs the Python implementation.
"""

from django.db import migrations

UUID7 = r"""
CREATE OR REPLACE FUNCTION stockroom_uuid7() RETURNS uuid
LANGUAGE sql VOLATILE PARALLEL SAFE AS $$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$$;
"""

RESERVE = r"""
CREATE OR REPLACE FUNCTION stockroom_reserve_orders(
    p_order_ids text[],
    p_fingerprints text[],
    p_expires_at timestamptz[],
    p_line_counts int[],
    p_skus text[],
    p_codes text[],
    p_qtys bigint[],
    p_actor text,
    p_request_id text
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    n_orders int := coalesce(array_length(p_order_ids, 1), 0);
    n_lines int := coalesce(array_length(p_skus, 1), 0);
    -- The wall clock, not now(): a caller's outer transaction may have started earlier.
    now_ts timestamptz := clock_timestamp();
    sep constant text := chr(31);
    new_ids uuid[] := array_fill(NULL::uuid, ARRAY[greatest(n_orders, 1)]);
    o_status text[] := array_fill('pending'::text, ARRAY[greatest(n_orders, 1)]);
    o_detail jsonb[] := array_fill('null'::jsonb, ARRAY[greatest(n_orders, 1)]);
    o_start int[] := array_fill(0, ARRAY[greatest(n_orders, 1)]);
    -- the locked rows, by position
    row_keys text[] := '{}';
    row_ids uuid[] := '{}';
    row_product uuid[] := '{}';
    row_warehouse uuid[] := '{}';
    row_on_hand bigint[] := '{}';
    row_reserved bigint[] := '{}';
    row_allow bigint[] := '{}';
    row_active boolean[] := '{}';
    row_delta bigint[] := '{}';
    line_row int[] := array_fill(0, ARRAY[greatest(n_lines, 1)]);
    -- accepted lines: ledger and reservation lines
    l_row int[] := '{}';
    l_qty bigint[] := '{}';
    l_res_after bigint[] := '{}';
    l_order int[] := '{}';
    failed uuid[] := '{}';
    r record;
    i int; j int; k int; pos int; n_rows int := 0;
    fp text; avail bigint;
    v_short jsonb; v_missing jsonb; v_inactive jsonb;
    v_changes jsonb := '[]'; v_ledger jsonb := '[]'; v_orders jsonb := '[]';
BEGIN
    -- Where each order's lines start (lines come grouped by order).
    pos := 1;
    FOR i IN 1 .. n_orders LOOP
        o_start[i] := pos;
        pos := pos + p_line_counts[i];
    END LOOP;

    -- 1. Claim the order ids, in order-id order.
    FOR r IN
        INSERT INTO inventory_reservation
            (id, order_id, status, expires_at, request_fingerprint, created_by, created_at, updated_at)
        SELECT stockroom_uuid7(), o.order_id, 'active', o.expires_at, o.fingerprint, p_actor, now_ts, now_ts
        FROM unnest(p_order_ids, p_fingerprints, p_expires_at) AS o(order_id, fingerprint, expires_at)
        ORDER BY o.order_id
        ON CONFLICT (order_id) DO NOTHING
        RETURNING id, order_id
    LOOP
        new_ids[array_position(p_order_ids, r.order_id)] := r.id;
    END LOOP;
    FOR i IN 1 .. n_orders LOOP
        IF new_ids[i] IS NULL THEN
            SELECT request_fingerprint INTO fp FROM inventory_reservation WHERE order_id = p_order_ids[i];
            o_status[i] := CASE WHEN fp = p_fingerprints[i] THEN 'exists' ELSE 'conflict' END;
        END IF;
    END LOOP;

    -- 2. Lock every row the new orders need, in primary-key order.
    FOR r IN
        SELECT inv.id, inv.product_id, inv.warehouse_id, inv.on_hand, inv.reserved,
               inv.backorder_allowance, p.sku, w.code, w.is_active
        FROM inventory_inventory inv
        JOIN inventory_product p ON p.id = inv.product_id
        JOIN warehouses_warehouse w ON w.id = inv.warehouse_id
        WHERE (p.sku, w.code) IN (
            SELECT DISTINCT t.s, t.c
            FROM unnest(p_skus, p_codes) WITH ORDINALITY AS t(s, c, n)
        )
        ORDER BY inv.id
        FOR NO KEY UPDATE OF inv
    LOOP
        n_rows := n_rows + 1;
        row_keys[n_rows] := r.sku || sep || r.code;
        row_ids[n_rows] := r.id;
        row_product[n_rows] := r.product_id;
        row_warehouse[n_rows] := r.warehouse_id;
        row_on_hand[n_rows] := r.on_hand;
        row_reserved[n_rows] := r.reserved;
        row_allow[n_rows] := r.backorder_allowance;
        row_active[n_rows] := r.is_active;
        row_delta[n_rows] := 0;
    END LOOP;
    FOR j IN 1 .. n_lines LOOP
        line_row[j] := coalesce(array_position(row_keys, p_skus[j] || sep || p_codes[j]), 0);
    END LOOP;

    -- 3. Allocate each new order, all lines or none, in the order given.
    FOR i IN 1 .. n_orders LOOP
        CONTINUE WHEN o_status[i] <> 'pending';
        v_short := '[]'; v_missing := '[]'; v_inactive := '[]';
        FOR j IN o_start[i] .. o_start[i] + p_line_counts[i] - 1 LOOP
            k := line_row[j];
            IF k = 0 THEN
                v_missing := v_missing || jsonb_build_array(jsonb_build_array(p_skus[j], p_codes[j]));
            ELSIF NOT row_active[k] THEN
                v_inactive := v_inactive || to_jsonb(p_codes[j]);
            ELSE
                avail := row_on_hand[k] - row_reserved[k] - row_delta[k] + row_allow[k];
                IF p_qtys[j] > avail THEN
                    v_short := v_short || jsonb_build_object(
                        'sku', p_skus[j], 'warehouse', p_codes[j],
                        'requested', p_qtys[j], 'available', greatest(avail, 0));
                END IF;
            END IF;
        END LOOP;
        IF jsonb_array_length(v_missing) > 0 THEN
            o_status[i] := 'missing'; o_detail[i] := v_missing;
        ELSIF jsonb_array_length(v_inactive) > 0 THEN
            o_status[i] := 'inactive'; o_detail[i] := v_inactive;
        ELSIF jsonb_array_length(v_short) > 0 THEN
            o_status[i] := 'insufficient'; o_detail[i] := v_short;
        ELSE
            o_status[i] := 'created';
            FOR j IN o_start[i] .. o_start[i] + p_line_counts[i] - 1 LOOP
                k := line_row[j];
                row_delta[k] := row_delta[k] + p_qtys[j];
                pos := coalesce(array_length(l_row, 1), 0) + 1;
                l_row[pos] := k;
                l_qty[pos] := p_qtys[j];
                l_res_after[pos] := row_reserved[k] + row_delta[k];
                l_order[pos] := i;
            END LOOP;
        END IF;
        IF o_status[i] <> 'created' THEN
            failed := failed || new_ids[i];
        END IF;
    END LOOP;

    -- 4. Write: drop failed claims, one UPDATE per row, ledger, reservation lines.
    IF array_length(failed, 1) > 0 THEN
        DELETE FROM inventory_reservation WHERE id = ANY(failed);
    END IF;
    IF coalesce(array_length(l_row, 1), 0) > 0 THEN
        WITH updated AS (
            UPDATE inventory_inventory AS inv
            SET reserved = inv.reserved + d.delta, version = inv.version + 1, updated_at = now_ts
            FROM unnest(row_ids, row_delta, row_keys) AS d(id, delta, rkey)
            WHERE inv.id = d.id AND d.delta <> 0
            RETURNING inv.id, inv.product_id, inv.warehouse_id, inv.on_hand, inv.reserved,
                      inv.version, d.rkey
        )
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   id, product_id, warehouse_id, on_hand, reserved, version,
                   split_part(rkey, sep, 1), split_part(rkey, sep, 2))), '[]')
        INTO v_changes FROM updated;

        WITH inserted AS (
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT stockroom_uuid7(), row_product[l.k], row_warehouse[l.k], 'RESERVE', 0, l.qty,
                   row_on_hand[l.k], l.res_after, 'order', p_order_ids[l.o], '',
                   now_ts, p_actor, p_request_id
            FROM unnest(l_row, l_qty, l_res_after, l_order) AS l(k, qty, res_after, o)
            RETURNING id, product_id, warehouse_id, reserved_delta, on_hand_after,
                      reserved_after, reference_id
        )
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   id, product_id, warehouse_id, reserved_delta, on_hand_after,
                   reserved_after, reference_id)), '[]')
        INTO v_ledger FROM inserted;

        INSERT INTO inventory_reservationline
            (id, reservation_id, inventory_id, product_id, warehouse_id, quantity,
             quantity_fulfilled, quantity_released, status)
        SELECT stockroom_uuid7(), new_ids[l.o], row_ids[l.k], row_product[l.k],
               row_warehouse[l.k], l.qty, 0, 0, 'active'
        FROM unnest(l_row, l_qty, l_order) AS l(k, qty, o);
    END IF;

    FOR i IN 1 .. n_orders LOOP
        v_orders := v_orders || jsonb_build_array(jsonb_build_array(
            o_status[i], CASE WHEN o_status[i] = 'created' THEN new_ids[i] END, o_detail[i]));
    END LOOP;
    RETURN jsonb_build_object(
        'orders', v_orders, 'changes', v_changes, 'ledger', v_ledger, 'at', now_ts);
END;
$$;
"""

DROP = """
DROP FUNCTION IF EXISTS stockroom_reserve_orders(
    text[], text[], timestamptz[], int[], text[], text[], bigint[], text, text);
DROP FUNCTION IF EXISTS stockroom_uuid7();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(UUID7.replace("%", "%%"))
        schema_editor.execute(RESERVE.replace("%", "%%"))


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("inventory", "0002_ledger_append_only_trigger")]
    operations = [migrations.RunPython(forward, reverse, elidable=False)]
