-- Frozen copy of inventory/sql/close_order.sql, loaded by migration 0013. Never edit it:
-- a later change to the function brings its own copy with its own migration.
--
-- stockroom_close_order: release or fulfil everything an order holds in one
-- statement (a lapsed hold is expired instead, as the sweeper would). Called by
-- inventory/services/reserve_sql.py (`close_in_database`); the ORM path in
-- inventory/services/reservation_close.py gives the same results.
--
-- The live definition (see reserve_orders.sql for how a change lands).

CREATE OR REPLACE FUNCTION stockroom_close_order(
    p_order_id text,
    p_type text,
    p_closing_status text,
    p_actor text,
    p_reason text,
    p_request_id text,
    p_placed_by text DEFAULT NULL::text,
    p_now timestamp with time zone DEFAULT NULL::timestamp with time zone,
    p_expiry_actor text DEFAULT NULL::text,
    p_expiry_reason text DEFAULT NULL::text
)
RETURNS jsonb
LANGUAGE plpgsql
AS $function$
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
    v_lapsed boolean := false;
BEGIN
    SELECT * INTO v_res FROM inventory_reservation
    WHERE order_id = p_order_id AND (p_placed_by IS NULL OR created_by = p_placed_by)
    FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('status', 'not_found');
    END IF;

    -- A hold past its expires_at has lapsed, swept or not: a release or a
    -- fulfilment expires it as the sweeper would, and answers 'lapsed'.
    IF p_closing_status <> 'expired' AND p_now IS NOT NULL
       AND v_res.status = 'active' AND v_res.expires_at <= p_now THEN
        v_lapsed := true;
        p_type := 'RELEASE';
        fulfil := false;
        p_closing_status := 'expired';
        p_actor := p_expiry_actor;
        p_reason := p_expiry_reason;
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

    -- Nothing open: a release or fulfilment is refused (the sweeper's is a no-op).
    IF r_ids IS NULL AND p_closing_status <> 'expired' THEN
        RETURN jsonb_build_object('status', 'closed', 'order_status', v_res.status);
    END IF;

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

    -- The order's status, by the rule of `services.orders.order_status`, over all its lines.
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
    IF r_ids IS NULL THEN
        v_status := v_res.status;  -- nothing was open, nothing closed
    END IF;
    v_status := coalesce(v_status, v_res.status);
    IF v_status <> v_res.status THEN
        UPDATE inventory_reservation SET status = v_status, updated_at = now_ts
        WHERE id = v_res.id;
        v_res.status := v_status;
        v_res.updated_at := now_ts;
    END IF;

    RETURN jsonb_build_object(
        'status', CASE WHEN v_lapsed THEN 'lapsed' ELSE 'done' END,
        'reservation', jsonb_build_array(v_res.id, v_res.status, v_res.expires_at,
                                         v_res.request_fingerprint, v_res.created_by,
                                         v_res.created_at, v_res.updated_at,
                                         v_res.confirmed_at),
        'lines', coalesce(v_lines, '[]'),
        'changes', coalesce(v_changes, '[]'),
        'ledger', coalesce(v_ledger, '[]'),
        'at', now_ts);
END;
$function$;
