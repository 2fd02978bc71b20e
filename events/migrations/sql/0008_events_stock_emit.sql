CREATE OR REPLACE FUNCTION public.events_stock_emit()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- One statement's ledger rows -> its stock events, set-based (events/sql/README.md):
-- stock.changed per stock row, sku.out_of_stock / sku.back_in_stock and
-- sku.low_stock on the transition, availability.changed per SKU (one per
-- transaction: a later statement of the same transaction updates it). Cheap per
-- batch: no per-group sorts, a plain insert (no unique-index upsert) in a
-- transaction's first statement.
-- A row's state after the statement is the inventory row (every writer updates
-- the row before it inserts the ledger rows); before = after - the statement's deltas.
-- stock.changed and availability.changed (one each per row / SKU: the bulk of a
-- batch's events) are stored in typed columns, no jsonb built per row (events
-- migration 0005); events_payload() renders their JSON at read time. The rare
-- transitions keep a stored jsonb payload.
-- Two paths, the same events (events migration 0008, tests/events/test_lean_emitter.py):
-- a statement of ONE ledger row in a transaction's first emitting statement (a 1-line
-- reservation, a single receipt or adjustment: the common case) takes the lean path,
-- two small statements over that row; every other statement the general one below.
-- The general statement's plan (~30 nodes, three writing) costs more to start and end
-- than a 1-row statement costs to run, and every 1-row change paid it.
DECLARE
    v_request text;
    v_rows bigint;
    r record;  -- the lean path's row
    v_set text;  -- (set_config's answer, unused: an assignment is not a query)
    v_low int := coalesce(nullif(current_setting('stockroom.low_stock_units', true), '')::int, 5);
    v_at timestamptz := clock_timestamp();
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
    -- Has an earlier statement of this transaction written availability.changed?
    -- (A transaction-local setting: a rolled-back savepoint takes it back with its events.)
    v_again boolean := coalesce(current_setting('stockroom.events_availability', true)
                                = pg_current_xact_id()::text, false);
BEGIN
    SELECT max(request_id), count(*) INTO v_request, v_rows FROM new_ledger;
    IF v_request IS NULL THEN
        -- No ledger rows (request_id is never NULL): nothing to emit. The reserve
        -- function's one-order statement inserts none when it declines the order.
        RETURN NULL;
    END IF;
    IF v_request <> '' THEN
        -- Later triggers of this transaction (reservation events) carry it too.
        v_set := set_config('stockroom.request_id', v_request, true);
    ELSE
        v_request := coalesce(current_setting('stockroom.request_id', true), '');
    END IF;

    IF v_rows = 1 AND NOT v_again THEN
        -- The lean path: the general statement's events for its one row, computed
        -- alike (state after = the inventory row, before = after - the row's deltas;
        -- its lists of one element; availability over the SKU's rows in every
        -- warehouse, by warehouse code), written by one INSERT in the general order:
        -- stock.changed, the stock transition, low stock, then availability.changed.
        SELECT c.*, x.*,
               (c.avail + c.allowance > 0) <> (c.old_avail + c.allowance > 0) AS flipped,
               c.avail > 0 AND c.avail <= c.threshold AND c.old_avail > c.threshold AS low,
               c.avail <> c.old_avail AS moved
        INTO r
        FROM (
            SELECT l.product_id, p.sku::text AS sku, w.code::text AS code,
                   inv.on_hand, inv.reserved, inv.backorder_allowance AS allowance,
                   CASE WHEN inv.reorder_threshold > 0 THEN inv.reorder_threshold ELSE v_low END
                       AS threshold,
                   inv.version, l.on_hand_delta, l.reserved_delta,
                   inv.on_hand - inv.reserved - inv.safety_stock - inv.damaged
                       - inv.quality_control AS avail,
                   (inv.on_hand - l.on_hand_delta) - (inv.reserved - l.reserved_delta)
                       - inv.safety_stock - (inv.damaged - l.damaged_delta)
                       - (inv.quality_control - l.quality_control_delta) AS old_avail,
                   ARRAY[l.id] AS ids, ARRAY[l.type::text] AS types,
                   CASE WHEN l.reference_id <> '' THEN ARRAY[l.reference_type::text] END
                       AS ref_types,
                   CASE WHEN l.reference_id <> '' THEN ARRAY[l.reference_id::text] END
                       AS ref_ids
            FROM new_ledger l
            JOIN inventory_inventory inv
              ON inv.product_id = l.product_id AND inv.warehouse_id = l.warehouse_id
            JOIN inventory_product p ON p.id = l.product_id
            JOIN warehouses_warehouse w ON w.id = l.warehouse_id
        ) c
        CROSS JOIN LATERAL (
            SELECT coalesce(sum(greatest(y.available, 0)) FILTER (WHERE y.is_active), 0)::bigint
                       AS total,
                   array_agg(y.code) AS codes, array_agg(y.available) AS warehouse_available,
                   array_agg(y.is_active) AS active
            FROM (
                SELECT w.code::text AS code, i.available, w.is_active
                FROM inventory_inventory i
                JOIN warehouses_warehouse w ON w.id = i.warehouse_id
                WHERE i.product_id = c.product_id
                ORDER BY w.code
            ) y
        ) x;
        IF FOUND THEN  -- (no inventory row yet: no events, as in the general statement)
            INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                                      stream, payload, on_hand, reserved, available,
                                      backorder_allowance, version, on_hand_delta,
                                      reserved_delta, ledger_ids, ledger_types,
                                      reference_types, reference_ids, warehouse_codes,
                                      warehouse_available, warehouse_active)
            SELECT v_pos, e.type, v_at, v_request, r.sku, e.warehouse, 'sku:' || r.sku,
                   e.payload, e.on_hand, e.reserved, e.available, e.allowance, e.version,
                   e.on_hand_delta, e.reserved_delta, e.ids, e.types, e.ref_types, e.ref_ids,
                   e.codes, e.warehouse_available, e.active
            FROM (VALUES
                ('stock.changed', r.code, NULL::jsonb, r.on_hand, r.reserved, r.avail,
                 r.allowance, r.version, r.on_hand_delta, r.reserved_delta, r.ids, r.types,
                 r.ref_types, r.ref_ids, NULL::text[], NULL::bigint[], NULL::boolean[], true),
                (CASE WHEN r.avail + r.allowance > 0
                      THEN 'sku.back_in_stock' ELSE 'sku.out_of_stock' END, r.code,
                 CASE WHEN r.flipped THEN jsonb_build_object('sku', r.sku, 'warehouse', r.code,
                     'available', r.avail, 'backorder_allowance', r.allowance,
                     'version', r.version) END,
                 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                 NULL, r.flipped),
                ('sku.low_stock', r.code,
                 CASE WHEN r.low THEN jsonb_build_object('sku', r.sku, 'warehouse', r.code,
                     'available', r.avail, 'threshold', r.threshold, 'version', r.version) END,
                 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                 NULL, r.low),
                ('availability.changed', '', NULL, NULL, NULL, r.total, NULL, NULL, NULL, NULL,
                 NULL, NULL, NULL, NULL, r.codes, r.warehouse_available, r.active, r.moved)
            ) e (type, warehouse, payload, on_hand, reserved, available, allowance, version,
                 on_hand_delta, reserved_delta, ids, types, ref_types, ref_ids, codes,
                 warehouse_available, active, keep)
            WHERE e.keep;
        END IF;
    ELSE
        -- The general statement: any number of ledger rows (several on one stock row
        -- grouped), and a transaction's later statements (availability.changed updated).
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
                   g.ids,
                   -- Most rows have one ledger row per statement: de-duplicate only the
                   -- others (an ordered or DISTINCT aggregate sorts once per group).
                   CASE WHEN g.n = 1 THEN g.types
                        ELSE ARRAY(SELECT DISTINCT t FROM unnest(g.types) AS t ORDER BY t) END
                       AS types,
                   -- References de-duplicated in the order of their JSON objects (the
                   -- order the jsonb payload had), only where a row has several ledger rows.
                   CASE WHEN g.n = 1 THEN g.ref_types
                        ELSE (SELECT array_agg(d.r ->> 'type' ORDER BY d.r)
                              FROM (SELECT DISTINCT jsonb_build_object('type', x.t, 'id', x.i) AS r
                                    FROM unnest(g.ref_types, g.ref_ids) AS x(t, i)) d)
                   END AS ref_types,
                   CASE WHEN g.n = 1 THEN g.ref_ids
                        ELSE (SELECT array_agg(d.r ->> 'id' ORDER BY d.r)
                              FROM (SELECT DISTINCT jsonb_build_object('type', x.t, 'id', x.i) AS r
                                    FROM unnest(g.ref_types, g.ref_ids) AS x(t, i)) d)
                   END AS ref_ids
            FROM (
                -- Input sorted once by row and ledger id: each group's arrays follow it.
                SELECT l.product_id, l.warehouse_id, count(*) AS n,
                       sum(l.on_hand_delta) AS d_on_hand,
                       sum(l.reserved_delta) AS d_reserved, sum(l.damaged_delta) AS d_damaged,
                       sum(l.quality_control_delta) AS d_quality_control,
                       array_agg(l.id) AS ids,
                       array_agg(l.type::text) AS types,
                       array_agg(l.reference_type::text) FILTER (WHERE l.reference_id <> '')
                           AS ref_types,
                       array_agg(l.reference_id::text) FILTER (WHERE l.reference_id <> '')
                           AS ref_ids
                FROM (SELECT * FROM new_ledger ORDER BY product_id, warehouse_id, id) l
                GROUP BY l.product_id, l.warehouse_id
            ) g
            JOIN inventory_inventory inv
              ON inv.product_id = g.product_id AND inv.warehouse_id = g.warehouse_id
            JOIN inventory_product p ON p.id = g.product_id
            JOIN warehouses_warehouse w ON w.id = g.warehouse_id
        ),
        a AS (
            -- availability.changed: per SKU whose availability moved, totals over every
            -- warehouse as this transaction sees them. One pass over the changed SKUs' rows
            -- in every warehouse, sorted once by SKU and warehouse code (the list follows it).
            SELECT x.sku,
                   coalesce(sum(greatest(x.available, 0)) FILTER (WHERE x.is_active), 0)::bigint AS total,
                   array_agg(x.code) AS codes, array_agg(x.available) AS available,
                   array_agg(x.is_active) AS active
            FROM (
                SELECT s.sku, w.code, i.available, w.is_active
                FROM (SELECT DISTINCT c.sku, c.product_id FROM c WHERE c.avail <> c.old_avail) s
                JOIN inventory_inventory i ON i.product_id = s.product_id
                JOIN warehouses_warehouse w ON w.id = i.warehouse_id
                ORDER BY s.sku, w.code
            ) x
            GROUP BY x.sku
        ),
        again AS (
            -- One event per SKU and transaction: a later statement of the transaction
            -- updates its event (it now tells the later state, at the later position).
            -- Skipped (one-time filter) in a transaction's first statement.
            UPDATE events_event e
            SET available = a.total, warehouse_codes = a.codes, warehouse_available = a.available,
                warehouse_active = a.active, occurred_at = v_at, request_id = v_request,
                feed_txid = v_pos
            FROM a
            WHERE v_again
              AND e.feed_txid >= pg_current_xact_id() AND e.txid = pg_current_xact_id()
              AND e.type = 'availability.changed' AND e.sku = a.sku
            RETURNING e.sku
        ),
        availability AS (
            INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                                      stream, available, warehouse_codes, warehouse_available,
                                      warehouse_active)
            SELECT v_pos, 'availability.changed', v_at, v_request, a.sku, '', 'sku:' || a.sku,
                   a.total, a.codes, a.available, a.active
            FROM a
            WHERE NOT v_again OR a.sku NOT IN (SELECT sku FROM again)
            ORDER BY a.sku
        )
        -- (A data-modifying WITH runs to completion whether or not it is read; PostgreSQL
        -- runs it after the main statement, so availability.changed follows the rows.)
        INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse, stream,
                                  payload, on_hand, reserved, available, backorder_allowance,
                                  version, on_hand_delta, reserved_delta, ledger_ids, ledger_types,
                                  reference_types, reference_ids)
        SELECT v_pos, e.type, v_at, v_request, c.sku, c.code, 'sku:' || c.sku, e.payload,
               e.on_hand, e.reserved, e.available, e.allowance, e.version, e.on_hand_delta,
               e.reserved_delta, e.ids, e.types, e.ref_types, e.ref_ids
        FROM c
        CROSS JOIN LATERAL (
            SELECT 'stock.changed' AS type, 1 AS n, NULL::jsonb AS payload,
                   c.on_hand, c.reserved, c.avail AS available, c.allowance, c.version,
                   c.on_hand - c.old_on_hand AS on_hand_delta,
                   c.reserved - c.old_reserved AS reserved_delta,
                   c.ids, c.types, c.ref_types, c.ref_ids
            UNION ALL
            SELECT CASE WHEN c.avail + c.allowance > 0
                        THEN 'sku.back_in_stock' ELSE 'sku.out_of_stock' END, 2,
                   jsonb_build_object('sku', c.sku, 'warehouse', c.code,
                       'available', c.avail, 'backorder_allowance', c.allowance,
                       'version', c.version),
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            WHERE (c.avail + c.allowance > 0) <> (c.old_avail + c.allowance > 0)
            UNION ALL
            SELECT 'sku.low_stock', 3, jsonb_build_object('sku', c.sku, 'warehouse', c.code,
                       'available', c.avail,
                       'threshold', CASE WHEN c.threshold > 0 THEN c.threshold ELSE v_low END,
                       'version', c.version),
                   NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
            WHERE c.avail > 0
              AND c.avail
                  <= CASE WHEN c.threshold > 0 THEN c.threshold ELSE v_low END
              AND c.old_avail
                  > CASE WHEN c.threshold > 0 THEN c.threshold ELSE v_low END
        ) e
        ORDER BY c.sku, c.code, e.n;
    END IF;
    IF NOT v_again THEN
        v_set := set_config('stockroom.events_availability', pg_current_xact_id()::text, true);
    END IF;
    RETURN NULL;
END;
$function$
