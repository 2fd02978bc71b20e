"""Releasing or fulfilling a whole order in one statement.

`stockroom_close_order(order_id, type, closing_status, actor, reason, request_id)`
does in one round trip what `_close_order_lines` does in Python for a whole
order (no lines given, no Idempotency-Key): lock the order's reservation row,
lock the inventory rows of its open lines in primary-key order (the deadlock
rule of inventory/locks.py), refuse a fulfilment that would take more than a
row has on hand, update each row, write the ledger rows (with the balances
after each change) and the lines, and set the order's status by the same rule
as `_order_status`. The ORM path (about a dozen queries) stays for partial
closes, keyed retries, SQLite and `STOCKROOM_RESERVE_ENGINE=python`; the
service tests run both engines.

Answer (JSON): `{"status": "not_found"}`, `{"status": "short", "short": [...]}`
for a fulfilment beyond on hand, or `{"status": "done", ...}` with the
reservation, its lines, the changed rows (for the after-commit publication) and
the ledger rows.
"""

from django.db import migrations

CLOSE = r"""
CREATE OR REPLACE FUNCTION stockroom_close_order(
    p_order_id text,
    p_type text,
    p_closing_status text,
    p_actor text,
    p_reason text,
    p_request_id text
) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    now_ts timestamptz := clock_timestamp();
    id_prefix text := stockroom_uuid7_prefix();
    id_base bigint := floor(random() * 4611686018427387903)::bigint;
    fulfil boolean := p_type = 'FULFILL';
    v_res inventory_reservation%ROWTYPE;
    r_ids uuid[]; r_qty bigint[]; r_line uuid[]; r_on_hand bigint[];
    r_sku text[]; r_code text[];
    v_short jsonb;
    v_changes jsonb := '[]';
    v_ledger jsonb := '[]';
    v_lines jsonb;
    v_status text;
BEGIN
    SELECT * INTO v_res FROM inventory_reservation
    WHERE order_id = p_order_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('status', 'not_found');
    END IF;

    -- The open lines' rows, locked in primary-key order (one line per row).
    SELECT array_agg(x.id), array_agg(x.open_qty), array_agg(x.line_id), array_agg(x.on_hand),
           array_agg(x.sku), array_agg(x.code)
      INTO r_ids, r_qty, r_line, r_on_hand, r_sku, r_code
    FROM (
        SELECT inv.id, inv.on_hand, l.id AS line_id, p.sku::text AS sku, w.code::text AS code,
               (l.quantity - l.quantity_fulfilled - l.quantity_released)::bigint AS open_qty
        FROM inventory_reservationline l
        JOIN inventory_inventory inv ON inv.id = l.inventory_id
        JOIN inventory_product p ON p.id = inv.product_id
        JOIN warehouses_warehouse w ON w.id = inv.warehouse_id
        WHERE l.reservation_id = v_res.id
          AND l.quantity > l.quantity_fulfilled + l.quantity_released
        ORDER BY inv.id
        FOR NO KEY UPDATE OF inv
    ) AS x;

    IF r_ids IS NOT NULL THEN
        IF fulfil THEN
            SELECT jsonb_agg(jsonb_build_object('sku', s, 'warehouse', c,
                                                'requested', q, 'on_hand', h) ORDER BY s, c)
              INTO v_short
            FROM unnest(r_sku, r_code, r_qty, r_on_hand) AS t(s, c, q, h)
            WHERE q > h;
            IF v_short IS NOT NULL THEN
                RETURN jsonb_build_object('status', 'short', 'short', v_short);
            END IF;
        END IF;

        WITH d AS (
            SELECT * FROM unnest(r_ids, r_qty) WITH ORDINALITY AS d(id, qty, n)
        ), updated AS (
            UPDATE inventory_inventory AS inv
            SET on_hand = inv.on_hand - CASE WHEN fulfil THEN d.qty ELSE 0 END,
                reserved = inv.reserved - d.qty,
                version = inv.version + 1, updated_at = now_ts
            FROM d
            WHERE inv.id = d.id
            RETURNING inv.id, inv.product_id, inv.warehouse_id, inv.on_hand, inv.reserved,
                      inv.version, d.qty, d.n
        ), inserted AS (
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT stockroom_uuid7_at(id_prefix, id_base, u.n), u.product_id, u.warehouse_id,
                   p_type, CASE WHEN fulfil THEN -u.qty ELSE 0 END, -u.qty,
                   u.on_hand, u.reserved, 'order', p_order_id, p_reason,
                   now_ts, p_actor, p_request_id
            FROM updated u
            RETURNING id, product_id, warehouse_id, on_hand_delta, reserved_delta,
                      on_hand_after, reserved_after
        )
        SELECT (SELECT jsonb_agg(jsonb_build_array(u.id, u.product_id, u.warehouse_id,
                                                   u.on_hand, u.reserved, u.version,
                                                   r_sku[u.n], r_code[u.n]) ORDER BY u.n)
                FROM updated u),
               (SELECT jsonb_agg(jsonb_build_array(i.id, i.product_id, i.warehouse_id,
                                                   i.on_hand_delta, i.reserved_delta,
                                                   i.on_hand_after, i.reserved_after)
                                 ORDER BY i.id)
                FROM inserted i)
          INTO v_changes, v_ledger;

        UPDATE inventory_reservationline AS l
        SET quantity_fulfilled = l.quantity_fulfilled + CASE WHEN fulfil THEN d.qty ELSE 0 END,
            quantity_released = l.quantity_released + CASE WHEN fulfil THEN 0 ELSE d.qty END,
            status = CASE WHEN fulfil OR l.quantity_fulfilled > 0 THEN 'fulfilled'
                          ELSE p_closing_status END
        FROM unnest(r_line, r_qty) AS d(id, qty)
        WHERE l.id = d.id;
    END IF;

    -- The order's status, by the rule of `_order_status`, over all its lines.
    SELECT CASE
               WHEN bool_or(l.quantity > l.quantity_fulfilled + l.quantity_released) THEN 'active'
               WHEN bool_or(l.quantity_fulfilled > 0) THEN 'fulfilled'
               WHEN bool_or(l.status = 'expired') THEN 'expired'
               ELSE p_closing_status
           END,
           jsonb_agg(jsonb_build_array(l.id, l.product_id, l.warehouse_id, p.sku, w.code,
                                       l.quantity, l.quantity_fulfilled, l.quantity_released,
                                       l.status) ORDER BY l.id)
      INTO v_status, v_lines
    FROM inventory_reservationline l
    JOIN inventory_product p ON p.id = l.product_id
    JOIN warehouses_warehouse w ON w.id = l.warehouse_id
    WHERE l.reservation_id = v_res.id;
    v_status := coalesce(v_status, v_res.status);
    IF v_status <> v_res.status THEN
        UPDATE inventory_reservation SET status = v_status, updated_at = now_ts
        WHERE id = v_res.id;
        v_res.status := v_status;
        v_res.updated_at := now_ts;
    END IF;

    RETURN jsonb_build_object(
        'status', 'done',
        'reservation', jsonb_build_array(v_res.id, v_res.status, v_res.expires_at,
                                         v_res.request_fingerprint, v_res.created_by,
                                         v_res.created_at, v_res.updated_at),
        'lines', coalesce(v_lines, '[]'),
        'changes', coalesce(v_changes, '[]'),
        'ledger', coalesce(v_ledger, '[]'),
        'at', now_ts);
END;
$$;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CLOSE.replace("%", "%%"))


def reverse(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "DROP FUNCTION IF EXISTS stockroom_close_order(text, text, text, text, text, text)"
        )


class Migration(migrations.Migration):
    dependencies = [("inventory", "0007_cheaper_reservation_ids")]
    operations = [migrations.RunPython(forward, reverse, elidable=False)]
