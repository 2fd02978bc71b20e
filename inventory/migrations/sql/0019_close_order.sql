-- stockroom_close_order: release or fulfil everything an order holds in one
-- statement (a lapsed hold is expired instead, as the sweeper would). Called by
-- inventory/services/reserve_sql.py (`close_in_database`); the ORM path in
-- inventory/services/reservation_close.py gives the same results.
--
-- The live definition (see reserve_orders.sql for how a change lands).
--
-- Bundles (issue #16, migration 0019): an order may hold several lines on one
-- row (bundles sharing a component, a component also sold alone). The row is
-- updated once with their total (and a fulfilment checked against it); each
-- line gets its own ledger row, balances running in line order, its reason
-- naming its bundle ('bundle:<SKU>', then ': <reason>').

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
    r_sku text[]; r_code text[]; r_bundle text[];
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

    -- The open lines' rows, locked in primary-key order (a row once however
    -- many of the order's lines are on it; its lines in line order).
    SELECT array_agg(x.id), array_agg(x.open_qty), array_agg(x.line_id), array_agg(x.on_hand),
           array_agg(x.sku), array_agg(x.code), array_agg(x.bundle_sku)
      INTO r_ids, r_qty, r_line, r_on_hand, r_sku, r_code, r_bundle
    FROM (
        -- on_hand: the good units on hand (damaged and quality-control units
        -- never ship; issue #15), what a fulfilment may take.
        SELECT inv.id, inv.on_hand - inv.damaged - inv.quality_control AS on_hand, l.id AS line_id, p.sku::text AS sku, w.code::text AS code,
               (l.quantity - l.quantity_fulfilled - l.quantity_released)::bigint AS open_qty,
               bp.sku::text AS bundle_sku
        FROM inventory_reservationline l
        JOIN inventory_inventory inv ON inv.id = l.inventory_id
        JOIN inventory_product p ON p.id = inv.product_id
        JOIN warehouses_warehouse w ON w.id = inv.warehouse_id
        LEFT JOIN inventory_product bp ON bp.id = l.bundle_id
        WHERE l.reservation_id = v_res.id
          AND l.quantity > l.quantity_fulfilled + l.quantity_released
        ORDER BY inv.id, l.id
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
            FROM (SELECT t.s, t.c, sum(t.q) AS q, t.h
                  FROM unnest(r_sku, r_code, r_qty, r_on_hand) AS t(s, c, q, h)
                  GROUP BY t.s, t.c, t.h) AS t
            WHERE q > h;
            IF v_short IS NOT NULL THEN
                RETURN jsonb_build_object('status', 'short', 'short', v_short);
            END IF;
        END IF;

        WITH d AS (
            -- each line, with what the row's later lines (in line order) take
            SELECT t.id, t.qty, t.b, t.n,
                   sum(t.qty) OVER (PARTITION BY t.id ORDER BY t.n DESC) - t.qty AS later
            FROM unnest(r_ids, r_qty, r_bundle) WITH ORDINALITY AS t(id, qty, b, n)
        ), per_row AS (
            SELECT d.id, sum(d.qty)::bigint AS qty, min(d.n) AS n FROM d GROUP BY d.id
        ), updated AS (
            UPDATE inventory_inventory AS inv
            SET on_hand = inv.on_hand - CASE WHEN fulfil THEN r.qty ELSE 0 END,
                reserved = inv.reserved - r.qty,
                version = inv.version + 1, updated_at = now_ts
            FROM per_row r
            WHERE inv.id = r.id
            RETURNING inv.id, inv.product_id, inv.warehouse_id, inv.on_hand, inv.reserved,
                      inv.version, r.qty, r.n,
                      inv.safety_stock + inv.damaged + inv.quality_control AS unsellable
        ), inserted AS (
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT stockroom_uuid7_at(id_prefix, id_base, d.n), u.product_id, u.warehouse_id,
                   p_type, CASE WHEN fulfil THEN -d.qty ELSE 0 END, -d.qty,
                   u.on_hand + CASE WHEN fulfil THEN d.later ELSE 0 END, u.reserved + d.later,
                   'order', p_order_id,
                   -- as inventory/services/bundle_lines.py's bundle_reason
                   CASE WHEN d.b IS NULL THEN p_reason
                        WHEN coalesce(p_reason, '') = '' THEN 'bundle:' || d.b
                        ELSE 'bundle:' || d.b || ': ' || p_reason END,
                   now_ts, p_actor, p_request_id
            FROM d JOIN updated u ON u.id = d.id
            RETURNING id, product_id, warehouse_id, on_hand_delta, reserved_delta,
                      on_hand_after, reserved_after, reason
        )
        SELECT (SELECT jsonb_agg(jsonb_build_array(u.id, u.product_id, u.warehouse_id,
                                                   u.on_hand, u.reserved, u.version,
                                                   r_sku[u.n], r_code[u.n], u.unsellable)
                                 ORDER BY u.n)
                FROM updated u),
               (SELECT jsonb_agg(jsonb_build_array(i.id, i.product_id, i.warehouse_id,
                                                   i.on_hand_delta, i.reserved_delta,
                                                   i.on_hand_after, i.reserved_after,
                                                   i.reason)
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
                                       l.status, l.bundle_id, bp.sku) ORDER BY l.id)
      INTO v_status, v_lines
    FROM inventory_reservationline l
    JOIN inventory_product p ON p.id = l.product_id
    JOIN warehouses_warehouse w ON w.id = l.warehouse_id
    LEFT JOIN inventory_product bp ON bp.id = l.bundle_id
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
