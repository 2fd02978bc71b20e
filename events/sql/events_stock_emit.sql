CREATE OR REPLACE FUNCTION public.events_stock_emit()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- One statement's ledger rows -> its stock events, set-based (events/sql/README.md):
-- stock.changed per stock row, sku.out_of_stock / sku.back_in_stock and
-- sku.low_stock on the transition, availability.changed per SKU (one per
-- transaction: a later statement of the same transaction updates it).
-- A row's state after the statement is the inventory row (every writer updates
-- the row before it inserts the ledger rows); before = after - the statement's deltas.
DECLARE
    v_request text;
    v_low int := coalesce(nullif(current_setting('stockroom.low_stock_units', true), '')::int, 5);
    v_at timestamptz := clock_timestamp();
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    SELECT max(request_id) INTO v_request FROM new_ledger;
    IF v_request <> '' THEN
        -- Later triggers of this transaction (reservation events) carry it too.
        PERFORM set_config('stockroom.request_id', v_request, true);
    ELSE
        v_request := coalesce(current_setting('stockroom.request_id', true), '');
    END IF;

    WITH c AS MATERIALIZED (
        SELECT g.product_id, p.sku::text AS sku, w.code::text AS code,
               inv.on_hand, inv.reserved, inv.backorder_allowance AS allowance,
               inv.reorder_threshold AS threshold, inv.version,
               inv.on_hand - g.d_on_hand AS old_on_hand,
               inv.reserved - g.d_reserved AS old_reserved,
               -- Sellable (issue 15): on hand - reserved - safety stock - damaged - QC,
               -- after and before the statement (safety stock moves without ledger rows).
               inv.on_hand - inv.reserved - inv.safety_stock - inv.damaged
                   - inv.quality_control AS avail,
               (inv.on_hand - g.d_on_hand) - (inv.reserved - g.d_reserved) - inv.safety_stock
                   - (inv.damaged - g.d_damaged)
                   - (inv.quality_control - g.d_quality_control) AS old_avail,
               g.ids, g.types, g.refs
        FROM (
            SELECT l.product_id, l.warehouse_id, sum(l.on_hand_delta) AS d_on_hand,
                   sum(l.reserved_delta) AS d_reserved, sum(l.damaged_delta) AS d_damaged,
                   sum(l.quality_control_delta) AS d_quality_control,
                   array_agg(l.id ORDER BY l.id) AS ids,
                   array_agg(DISTINCT l.type::text) AS types,
                   jsonb_agg(DISTINCT jsonb_build_object('type', l.reference_type,
                                                        'id', l.reference_id))
                       FILTER (WHERE l.reference_id <> '') AS refs
            FROM new_ledger l
            GROUP BY l.product_id, l.warehouse_id
        ) g
        JOIN inventory_inventory inv
          ON inv.product_id = g.product_id AND inv.warehouse_id = g.warehouse_id
        JOIN inventory_product p ON p.id = g.product_id
        JOIN warehouses_warehouse w ON w.id = g.warehouse_id
    ),
    availability AS (
        -- availability.changed: per SKU whose availability moved, totals over every
        -- warehouse as this transaction sees them; one event per SKU and transaction.
        INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                                  stream, payload)
        SELECT v_pos, 'availability.changed', v_at, v_request, s.sku, '', 'sku:' || s.sku,
               jsonb_build_object('sku', s.sku, 'available', a.total, 'warehouses', a.rows)
        FROM (SELECT DISTINCT ON (c.sku) c.sku, c.product_id
              FROM c
              WHERE c.avail <> c.old_avail
              ORDER BY c.sku) s
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(greatest(i.available, 0)) FILTER (WHERE w.is_active), 0) AS total,
                   jsonb_agg(jsonb_build_object('warehouse', w.code, 'available', i.available,
                                                'active', w.is_active) ORDER BY w.code) AS rows
            FROM inventory_inventory i
            JOIN warehouses_warehouse w ON w.id = i.warehouse_id
            WHERE i.product_id = s.product_id
        ) a
        ORDER BY s.sku
        ON CONFLICT (txid, sku) WHERE type = 'availability.changed'
        DO UPDATE SET payload = EXCLUDED.payload, occurred_at = EXCLUDED.occurred_at,
                      request_id = EXCLUDED.request_id,
                      -- it now tells this statement's state: it files at its position
                      feed_txid = EXCLUDED.feed_txid
    )
    -- (A data-modifying WITH runs to completion whether or not it is read; PostgreSQL
    -- runs it after the main statement, so availability.changed follows the rows.)
    INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse, stream,
                              payload)
    SELECT v_pos, e.type, v_at, v_request, c.sku, c.code, 'sku:' || c.sku, e.payload
    FROM c
    CROSS JOIN LATERAL (
        SELECT 'stock.changed' AS type, 1 AS n, jsonb_build_object(
            'sku', c.sku, 'warehouse', c.code, 'on_hand', c.on_hand,
            'reserved', c.reserved, 'available', c.avail,
            'backorder_allowance', c.allowance, 'version', c.version,
            'on_hand_delta', c.on_hand - c.old_on_hand,
            'reserved_delta', c.reserved - c.old_reserved,
            'ledger_ids', to_jsonb(c.ids), 'ledger_types', to_jsonb(c.types),
            'references', coalesce(c.refs, '[]')) AS payload
        UNION ALL
        SELECT CASE WHEN c.avail + c.allowance > 0
                    THEN 'sku.back_in_stock' ELSE 'sku.out_of_stock' END, 2,
               jsonb_build_object('sku', c.sku, 'warehouse', c.code,
                   'available', c.avail, 'backorder_allowance', c.allowance,
                   'version', c.version)
        WHERE (c.avail + c.allowance > 0) <> (c.old_avail + c.allowance > 0)
        UNION ALL
        SELECT 'sku.low_stock', 3, jsonb_build_object('sku', c.sku, 'warehouse', c.code,
                   'available', c.avail,
                   'threshold', CASE WHEN c.threshold > 0 THEN c.threshold ELSE v_low END,
                   'version', c.version)
        WHERE c.avail > 0
          AND c.avail
              <= CASE WHEN c.threshold > 0 THEN c.threshold ELSE v_low END
          AND c.old_avail
              > CASE WHEN c.threshold > 0 THEN c.threshold ELSE v_low END
    ) e
    ORDER BY c.sku, c.code, e.n;
    RETURN NULL;
END;
$function$
