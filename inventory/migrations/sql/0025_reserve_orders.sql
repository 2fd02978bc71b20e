-- stockroom_reserve_orders: reserve a batch of orders (one order is a batch of one)
-- in one statement, each order all lines or none. Called by
-- inventory/services/reserve_sql.py (`reserve_in_database`); the ORM path in
-- inventory/services/reservations.py gives the same results. A batch in which a
-- new order needs a stock row that does not exist yet reserves nothing: the
-- caller creates the rows and calls again (step 2b; migration 0014).
--
-- The live definition: tests/database/test_sql_functions.py compares it with the
-- migrated database. To change it, edit this file and add a migration that loads
-- a frozen copy of it (inventory/migrations/sql/<number>_reserve_orders.sql).
--
-- Bundles (issue #16, migration 0019): the caller expands a bundle's order line
-- into its components' lines (inventory/services/bundle_lines.py) and names the
-- bundle in p_bundles (NULL for a plain line). An order may then have several
-- lines on one row (bundles sharing a component, a component also sold alone):
-- each row is checked once per order against the order's total on it, and each
-- line gets its own reservation line (with its bundle) and ledger row (reason
-- 'bundle:<SKU>').
--
-- The composition race (issue #16, migration 0022): the caller also passes the
-- compositions it expanded with (p_compositions, {bundle SKU: [[component SKU,
-- quantity], ...] in component SKU order}; NULL when no line is a bundle's). The
-- function takes those bundles' product rows FOR SHARE first (step 1 of the lock
-- order in inventory/locks.py, before the order's reservation row and its stock
-- rows) and compares them with the stored compositions: a composition change
-- (inventory/services/catalogue.py, FOR UPDATE of the bundle's row) either
-- committed before, and then a mismatch answers every order 'stale' (with the
-- bundle SKUs) having done nothing, so the caller re-reads and calls again; or
-- it waits for this transaction, and then finds its lines and refuses
-- (bundle_in_use). No open line set is ever made with an old composition.

DROP FUNCTION IF EXISTS stockroom_reserve_orders(
    text[], text[], timestamp with time zone[], integer[], text[], text[], bigint[],
    text, text, timestamp with time zone);
DROP FUNCTION IF EXISTS stockroom_reserve_orders(
    text[], text[], timestamp with time zone[], integer[], text[], text[], bigint[],
    text, text, timestamp with time zone, text[]);

CREATE OR REPLACE FUNCTION stockroom_reserve_orders(
    p_order_ids text[],
    p_fingerprints text[],
    p_expires_at timestamp with time zone[],
    p_line_counts integer[],
    p_skus text[],
    p_codes text[],
    p_qtys bigint[],
    p_actor text,
    p_request_id text,
    p_now timestamp with time zone,
    p_bundles text[],
    p_compositions jsonb
)
RETURNS jsonb
LANGUAGE plpgsql
AS $function$
DECLARE
    n_orders int := coalesce(array_length(p_order_ids, 1), 0);
    -- The wall clock, not now(): a caller's outer transaction may have started earlier.
    now_ts timestamptz := clock_timestamp();
    id_prefix text := stockroom_uuid7_prefix();
    id_base bigint := floor(random() * 4611686018427387903)::bigint;
    new_ids uuid[];
    o_status text[];
    o_detail jsonb[] := array_fill(NULL::jsonb, ARRAY[greatest(n_orders, 1)]);
    line_row int[];
    -- the locked rows, by position (pk order)
    row_ids uuid[]; row_product uuid[]; row_warehouse uuid[];
    row_on_hand bigint[]; row_reserved bigint[]; row_allow bigint[];
    row_active boolean[]; row_sku text[]; row_code text[];
    row_delta bigint[];
    -- this order's total per row (checked once per row, then zeroed)
    row_need bigint[]; need bigint;
    row_touched boolean[];
    -- holds past their expiry on a row, loaded when one of its lines comes up
    -- short: flattened, per row a cursor (next to release) and an end
    row_lp_loaded boolean[]; row_lp_next int[]; row_lp_end int[];
    row_lp_free bigint[];
    lp_line uuid[] := '{}'; lp_res uuid[] := '{}'; lp_order text[] := '{}';
    lp_bundle text[] := '{}';
    lp_exp timestamptz[] := '{}'; lp_qty bigint[] := '{}'; n_lp int := 0; m int;
    lp record; n_rows int; n_rel int := 0;
    -- accepted lines: ledger rows and reservation lines
    l_row int[] := '{}'; l_qty bigint[] := '{}';
    l_res_after bigint[] := '{}'; l_order int[] := '{}';
    l_type text[] := '{}'; l_ref text[] := '{}'; l_line uuid[] := '{}';
    l_res uuid[] := '{}'; l_exp timestamptz[] := '{}'; l_bundle text[] := '{}';
    rel_lines uuid[]; rel_res uuid[]; v_released jsonb := '[]';
    n_acc int := 0;
    failed uuid[] := '{}'; n_failed int := 0;
    i int; j int; k int; first_line int := 1; last_line int; avail bigint;
    v_short jsonb; v_missing jsonb; v_inactive jsonb;
    v_changes jsonb := '[]'; v_ledger jsonb := '[]'; v_orders jsonb;
    v_stale jsonb;
    -- the one-order fast path (below)
    n_lines int := coalesce(array_length(p_skus, 1), 0);
    fp_claim uuid; fp_ok boolean; fp_short jsonb; fp_short_rows uuid[];
BEGIN
    IF n_orders = 0 THEN
        RETURN jsonb_build_object('orders', '[]'::jsonb, 'changes', '[]'::jsonb,
                                  'ledger', '[]'::jsonb, 'released', '[]'::jsonb,
                                  'at', now_ts);
    END IF;

    -- The one-order fast path (issue #18, migration 0023): one order, no bundle
    -- line, every line on a row of its own. One statement claims the order id
    -- (lock order step 2), locks its rows in primary-key order (step 3), checks
    -- every line against its row under that lock, and only when all fit and the
    -- warehouse is active updates the rows and writes the ledger rows and the
    -- reservation lines: what the general path below writes for such an order,
    -- with the same ids, reasons and answer, in one executor run instead of
    -- seven statements and the array bookkeeping between them. Anything else
    -- (the id exists, a row is missing, a warehouse inactive, a line short, so
    -- that lapsed holds may matter) changes nothing here but the claim, which
    -- the general path goes on with (step 1) and drops if it refuses too.
    -- A short order whose short rows have no lapsed hold at all (none could help)
    -- is refused here instead (migration 0025): one more statement drops the
    -- claim, checking that (a fresh snapshot, the rows still locked), and the
    -- answer is the general path's ('insufficient', each short line with what
    -- its row has); with any lapsed hold there, the general path decides.
    -- Trigger order: the ledger rows' statement trigger (stock events) is
    -- queued before the lines' (reservation.created), as in the general path:
    -- the main query reads `led` to its end, the lines' insert runs after it
    -- (a data-modifying WITH not read by the main query runs when it is done).
    IF n_orders = 1 AND p_compositions IS NULL AND n_lines > 0
       AND p_line_counts[1] = n_lines
       AND coalesce(cardinality(array_remove(p_bundles, NULL)), 0) = 0 THEN
        WITH claim AS (
            INSERT INTO inventory_reservation
                (id, order_id, status, expires_at, request_fingerprint, created_by,
                 created_at, updated_at)
            VALUES (stockroom_uuid7_at(id_prefix, id_base, 1), p_order_ids[1], 'active',
                    p_expires_at[1], p_fingerprints[1], p_actor, now_ts, now_ts)
            ON CONFLICT (order_id) DO NOTHING
            RETURNING id
        ),
        locked AS MATERIALIZED (
            -- (after the claim: EXISTS is a one-time filter, run before any lock)
            SELECT inv.id, inv.product_id, inv.warehouse_id, inv.on_hand, inv.reserved,
                   -- sellable headroom, as step 2's backorder_allowance below
                   inv.backorder_allowance - inv.safety_stock - inv.damaged
                       - inv.quality_control AS allowance,
                   w.is_active, t.s, t.c, t.q, t.n
            FROM unnest(p_skus, p_codes, p_qtys) WITH ORDINALITY AS t(s, c, q, n)
            JOIN inventory_product p ON p.sku = t.s
            JOIN warehouses_warehouse w ON w.code = t.c
            JOIN inventory_inventory inv ON inv.product_id = p.id AND inv.warehouse_id = w.id
            WHERE EXISTS (SELECT FROM claim)
            ORDER BY inv.id
            FOR NO KEY UPDATE OF inv
        ),
        verdict AS (
            -- found: every line on a row of its own, in an active warehouse
            SELECT v.found, v.found AND v.fits AS ok
            FROM (SELECT count(*) = n_lines AND count(DISTINCT l.id) = n_lines
                         AND coalesce(bool_and(l.is_active), false) AS found,
                         coalesce(bool_and(coalesce(
                             l.q <= l.on_hand - l.reserved + l.allowance, false)), false)
                             AS fits
                  FROM locked l) v
        ),
        upd AS (
            UPDATE inventory_inventory AS inv
            SET reserved = inv.reserved + l.q, version = inv.version + 1, updated_at = now_ts
            FROM locked l
            WHERE inv.id = l.id AND (SELECT v.ok FROM verdict v)
            RETURNING inv.id, inv.product_id, inv.warehouse_id, inv.on_hand, inv.reserved,
                      inv.version, l.s, l.c, l.q, l.n,
                      inv.safety_stock + inv.damaged + inv.quality_control AS unsellable
        ),
        led AS (
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT stockroom_uuid7_at(id_prefix, id_base, 1 + u.n), u.product_id,
                   u.warehouse_id, 'RESERVE', 0, u.q, u.on_hand, u.reserved, 'order',
                   p_order_ids[1], '', now_ts, p_actor, p_request_id
            FROM upd u
            ORDER BY u.n
            RETURNING id, product_id, warehouse_id, reserved_delta, on_hand_after,
                      reserved_after, reference_id, reason
        ),
        lines AS (
            INSERT INTO inventory_reservationline
                (id, reservation_id, inventory_id, product_id, warehouse_id, quantity,
                 quantity_fulfilled, quantity_released, status, bundle_id)
            SELECT stockroom_uuid7_at(id_prefix, id_base, 1 + n_lines + u.n), c.id, u.id,
                   u.product_id, u.warehouse_id, u.q, 0, 0, 'active', NULL
            FROM upd u CROSS JOIN claim c
            ORDER BY u.n
        )
        SELECT (SELECT c.id FROM claim c), (SELECT v.ok FROM verdict v),
               (SELECT coalesce(jsonb_agg(jsonb_build_array(
                           u.id, u.product_id, u.warehouse_id, u.on_hand, u.reserved,
                           u.version, u.s, u.c, u.unsellable)), '[]')
                FROM upd u),
               (SELECT coalesce(jsonb_agg(jsonb_build_array(
                           x.id, x.product_id, x.warehouse_id, x.reserved_delta,
                           x.on_hand_after, x.reserved_after, x.reference_id, x.reason)), '[]')
                FROM led x),
               -- the short lines, as the general path answers them (no lapsed hold)
               (SELECT jsonb_agg(jsonb_build_object(
                           'sku', l.s, 'warehouse', l.c, 'requested', l.q,
                           'available', greatest(l.on_hand - l.reserved + l.allowance, 0))
                       ORDER BY l.n)
                FROM locked l
                WHERE (SELECT v.found FROM verdict v)
                  AND l.q > l.on_hand - l.reserved + l.allowance),
               (SELECT array_agg(l.id) FROM locked l
                WHERE l.q > l.on_hand - l.reserved + l.allowance)
          INTO fp_claim, fp_ok, v_changes, v_ledger, fp_short, fp_short_rows;
        IF fp_ok THEN
            RETURN jsonb_build_object(
                'orders', jsonb_build_array(jsonb_build_array('created', fp_claim, NULL)),
                'changes', v_changes, 'ledger', v_ledger, 'released', '[]'::jsonb,
                'at', now_ts);
        END IF;
        IF fp_short IS NOT NULL THEN
            DELETE FROM inventory_reservation r
            WHERE r.id = fp_claim
              AND NOT EXISTS (
                  SELECT FROM inventory_reservationline rl
                  JOIN inventory_reservation lr ON lr.id = rl.reservation_id
                  WHERE rl.inventory_id = ANY(fp_short_rows) AND rl.status = 'active'
                    AND lr.status = 'active' AND lr.expires_at <= p_now
                    AND rl.quantity - rl.quantity_fulfilled - rl.quantity_released > 0);
            IF FOUND THEN
                RETURN jsonb_build_object(
                    'orders', jsonb_build_array(jsonb_build_array('insufficient', NULL, fp_short)),
                    'changes', '[]'::jsonb, 'ledger', '[]'::jsonb, 'released', '[]'::jsonb,
                    'at', now_ts);
            END IF;
        END IF;
        v_changes := '[]'; v_ledger := '[]';  -- (fp_claim, if set, is step 1's claim)
    END IF;

    -- 0. Bundles: lock their product rows FOR SHARE (id order), then check that
    -- the compositions the lines were expanded with are the stored ones.
    IF p_compositions IS NOT NULL THEN
        PERFORM 1 FROM inventory_product p
         WHERE p.sku IN (SELECT jsonb_object_keys(p_compositions))
         ORDER BY p.id
         FOR SHARE;
        SELECT jsonb_agg(k.sku ORDER BY k.sku) INTO v_stale
        FROM jsonb_each(p_compositions) AS k(sku, used)
        WHERE k.used IS DISTINCT FROM coalesce((
            SELECT jsonb_agg(jsonb_build_array(cp.sku::text, bc.quantity) ORDER BY cp.sku)
            FROM inventory_product bp
            JOIN inventory_bundlecomponent bc ON bc.bundle_id = bp.id
            JOIN inventory_product cp ON cp.id = bc.component_id
            WHERE bp.sku = k.sku AND bp.is_bundle), '[]'::jsonb);
        IF v_stale IS NOT NULL THEN
            SELECT jsonb_agg(jsonb_build_array('stale', NULL, v_stale))
              INTO v_orders FROM generate_series(1, n_orders);
            RETURN jsonb_build_object(
                'orders', v_orders, 'changes', '[]'::jsonb, 'ledger', '[]'::jsonb,
                'released', '[]'::jsonb, 'at', now_ts);
        END IF;
    END IF;

    -- 1. Claim the order ids, in order-id order; NULL where the id already exists.
    -- (An order the fast path above declined keeps the claim it made there.)
    IF fp_claim IS NOT NULL THEN
        new_ids := ARRAY[fp_claim];
        o_status := ARRAY['pending'];
    ELSE
        WITH claimed AS (
            INSERT INTO inventory_reservation
                (id, order_id, status, expires_at, request_fingerprint, created_by,
                 created_at, updated_at)
            SELECT stockroom_uuid7_at(id_prefix, id_base, o.n), o.order_id, 'active', o.expires_at, o.fingerprint, p_actor,
                   now_ts, now_ts
            FROM unnest(p_order_ids, p_fingerprints, p_expires_at) WITH ORDINALITY
                 AS o(order_id, fingerprint, expires_at, n)
            ORDER BY o.order_id
            ON CONFLICT (order_id) DO NOTHING
            RETURNING id, order_id
        )
        SELECT array_agg(c.id ORDER BY o.n) INTO new_ids
        FROM unnest(p_order_ids) WITH ORDINALITY AS o(order_id, n)
        LEFT JOIN claimed c ON c.order_id = o.order_id;

        IF array_position(new_ids, NULL) IS NULL THEN
            o_status := array_fill('pending'::text, ARRAY[n_orders]);
        ELSE
            -- An existing id is a retry (same fingerprint) or a conflict.
            SELECT array_agg(CASE WHEN o.id IS NOT NULL THEN 'pending'
                                  WHEN r.request_fingerprint = o.fp THEN 'exists'
                                  ELSE 'conflict' END ORDER BY o.n) INTO o_status
            FROM unnest(new_ids, p_order_ids, p_fingerprints) WITH ORDINALITY AS o(id, order_id, fp, n)
            LEFT JOIN inventory_reservation r ON o.id IS NULL AND r.order_id = o.order_id;
        END IF;
    END IF;

    -- 2. Lock every row the batch names, once each, in primary-key order.
    SELECT array_agg(x.id), array_agg(x.product_id), array_agg(x.warehouse_id),
           array_agg(x.on_hand), array_agg(x.reserved), array_agg(x.backorder_allowance),
           array_agg(x.is_active), array_agg(x.sku), array_agg(x.code),
           array_fill(0::bigint, ARRAY[greatest(count(*)::int, 1)])
      INTO row_ids, row_product, row_warehouse, row_on_hand, row_reserved, row_allow,
           row_active, row_sku, row_code, row_delta
    FROM (
        -- The headroom below zero a row may go to, less what is not sellable
        -- (safety stock, damaged, quality control: issue #15): a line fits
        -- while on_hand - reserved + it stays >= 0, i.e. sellable >= -allowance.
        SELECT inv.id, inv.product_id, inv.warehouse_id, inv.on_hand, inv.reserved,
               inv.backorder_allowance - inv.safety_stock - inv.damaged - inv.quality_control
                   AS backorder_allowance,
               w.is_active, p.sku::text AS sku, w.code::text AS code
        FROM inventory_inventory inv
        JOIN inventory_product p ON p.id = inv.product_id
        JOIN warehouses_warehouse w ON w.id = inv.warehouse_id
        WHERE (p.sku, w.code) IN (SELECT DISTINCT t.s, t.c FROM unnest(p_skus, p_codes) AS t(s, c))
        ORDER BY inv.id
        FOR NO KEY UPDATE OF inv
    ) AS x;

    -- Each line's row position (0: no such row), by a join rather than a search per line.
    SELECT array_agg(coalesce(r.pos, 0)::int ORDER BY t.n) INTO line_row
    FROM unnest(p_skus, p_codes) WITH ORDINALITY AS t(s, c, n)
    LEFT JOIN unnest(row_sku, row_code) WITH ORDINALITY AS r(s, c, pos)
           ON r.s = t.s AND r.c = t.c;

    -- 2b. A new order needs a row that does not exist (a backorder SKU in a new
    -- warehouse, or an unknown SKU or warehouse): try no order at all. Every new
    -- order that needs one is 'missing' (with its pairs), every other new order
    -- 'deferred'; the caller creates the rows and runs the batch once more, whole
    -- and in the order given, so an earlier order still gets the stock first.
    IF 0 = ANY(line_row) THEN
        FOR i IN 1 .. n_orders LOOP
            last_line := first_line + p_line_counts[i] - 1;
            IF o_status[i] = 'pending' THEN
                v_missing := NULL;
                FOR j IN first_line .. last_line LOOP
                    IF line_row[j] = 0 THEN
                        v_missing := coalesce(v_missing, '[]')
                            || jsonb_build_array(jsonb_build_array(p_skus[j], p_codes[j]));
                    END IF;
                END LOOP;
                IF v_missing IS NOT NULL THEN
                    o_status[i] := 'missing'; o_detail[i] := v_missing;
                END IF;
            END IF;
            first_line := last_line + 1;
        END LOOP;
        first_line := 1;
        IF 'missing' = ANY(o_status) THEN
            FOR i IN 1 .. n_orders LOOP
                IF o_status[i] IN ('pending', 'missing') THEN
                    IF o_status[i] = 'pending' THEN
                        o_status[i] := 'deferred';
                    END IF;
                    n_failed := n_failed + 1;
                    failed[n_failed] := new_ids[i];
                END IF;
            END LOOP;
            DELETE FROM inventory_reservation WHERE id = ANY(failed);
            SELECT jsonb_agg(jsonb_build_array(o.s, NULL, o.d) ORDER BY o.n) INTO v_orders
            FROM unnest(o_status, o_detail[1:n_orders]) WITH ORDINALITY AS o(s, d, n);
            RETURN jsonb_build_object(
                'orders', v_orders, 'changes', '[]'::jsonb, 'ledger', '[]'::jsonb,
                'released', '[]'::jsonb, 'at', now_ts);
        END IF;
    END IF;

    n_rows := greatest(coalesce(array_length(row_ids, 1), 0), 1);
    row_touched := array_fill(false, ARRAY[n_rows]);
    row_lp_loaded := array_fill(false, ARRAY[n_rows]);
    row_lp_next := array_fill(0, ARRAY[n_rows]);
    row_lp_end := array_fill(0, ARRAY[n_rows]);
    row_lp_free := array_fill(0::bigint, ARRAY[n_rows]);
    row_need := array_fill(0::bigint, ARRAY[n_rows]);

    -- 3. Allocate each new order, all lines or none, in the order given.
    FOR i IN 1 .. n_orders LOOP
        last_line := first_line + p_line_counts[i] - 1;
        IF o_status[i] = 'pending' THEN
            v_short := NULL; v_missing := NULL; v_inactive := NULL;
            -- The order's total per row: what its lines on a row need together.
            FOR j IN first_line .. last_line LOOP
                k := line_row[j];
                IF k > 0 THEN
                    row_need[k] := row_need[k] + p_qtys[j];
                END IF;
            END LOOP;
            FOR j IN first_line .. last_line LOOP
                k := line_row[j];
                need := 0;
                IF k > 0 THEN
                    -- Checked at the row's first line, with the total; zeroed, so
                    -- its other lines skip the check.
                    need := row_need[k];
                    row_need[k] := 0;
                END IF;
                IF k = 0 THEN
                    v_missing := coalesce(v_missing, '[]')
                        || jsonb_build_array(jsonb_build_array(p_skus[j], p_codes[j]));
                ELSIF need = 0 THEN
                    NULL;  -- another line of this order on the row was checked with it
                ELSIF NOT row_active[k] THEN
                    v_inactive := coalesce(v_inactive, '[]') || to_jsonb(p_codes[j]);
                ELSE
                    avail := row_on_hand[k] - row_reserved[k] - row_delta[k] + row_allow[k];
                    IF need > avail AND NOT row_lp_loaded[k] THEN
                        -- Holds past their expiry on this row count nowhere. Lock
                        -- their orders, SKIP LOCKED (never waits: an order being
                        -- closed right now is left to its closer).
                        row_lp_loaded[k] := true;
                        row_lp_next[k] := n_lp + 1;
                        FOR lp IN
                            SELECT x.line_id, x.res_id, x.order_id, x.expires_at, x.open,
                                   x.bundle_sku
                            FROM (
                                SELECT rl.id AS line_id, lr.id AS res_id, lr.order_id,
                                       lr.expires_at,
                                       rl.quantity - rl.quantity_fulfilled
                                           - rl.quantity_released AS open,
                                       bp.sku::text AS bundle_sku
                                FROM inventory_reservationline rl
                                JOIN inventory_reservation lr ON lr.id = rl.reservation_id
                                LEFT JOIN inventory_product bp ON bp.id = rl.bundle_id
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
                            lp_bundle[n_lp] := lp.bundle_sku;
                            row_lp_free[k] := row_lp_free[k] + lp.open;
                        END LOOP;
                        row_lp_end[k] := n_lp;
                    END IF;
                    IF need > avail + row_lp_free[k] THEN
                        v_short := coalesce(v_short, '[]') || jsonb_build_object(
                            'sku', p_skus[j], 'warehouse', p_codes[j],
                            'requested', need,
                            'available', greatest(avail + row_lp_free[k], 0));
                    END IF;
                END IF;
            END LOOP;
            IF v_missing IS NOT NULL THEN
                o_status[i] := 'missing'; o_detail[i] := v_missing;
            ELSIF v_inactive IS NOT NULL THEN
                o_status[i] := 'inactive'; o_detail[i] := v_inactive;
            ELSIF v_short IS NOT NULL THEN
                o_status[i] := 'insufficient'; o_detail[i] := v_short;
            ELSE
                o_status[i] := 'created';
                FOR j IN first_line .. last_line LOOP
                    k := line_row[j];
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
                        l_bundle[n_acc] := lp_bundle[m];
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
                    l_bundle[n_acc] := p_bundles[j];
                END LOOP;
            END IF;
            IF o_status[i] <> 'created' THEN
                n_failed := n_failed + 1;
                failed[n_failed] := new_ids[i];
            END IF;
        END IF;
        first_line := last_line + 1;
    END LOOP;

    -- 4. Write: drop failed claims, one UPDATE per row, ledger, reservation lines.
    IF n_failed > 0 THEN
        DELETE FROM inventory_reservation WHERE id = ANY(failed);
    END IF;
    IF n_acc > 0 THEN
        WITH updated AS (
            UPDATE inventory_inventory AS inv
            SET reserved = inv.reserved + d.delta, version = inv.version + 1, updated_at = now_ts
            FROM unnest(row_ids, row_delta, row_touched) WITH ORDINALITY
                 AS d(id, delta, touched, rpos)
            WHERE inv.id = d.id AND d.touched
            RETURNING inv.id, inv.product_id, inv.warehouse_id, inv.on_hand, inv.reserved,
                      inv.version, d.rpos,
                      inv.safety_stock + inv.damaged + inv.quality_control AS unsellable
        )
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   id, product_id, warehouse_id, on_hand, reserved, version,
                   row_sku[rpos], row_code[rpos], unsellable)), '[]')
        INTO v_changes FROM updated;

        WITH inserted AS (
            INSERT INTO inventory_inventorytransaction
                (id, product_id, warehouse_id, type, on_hand_delta, reserved_delta,
                 on_hand_after, reserved_after, reference_type, reference_id, reason,
                 created_at, created_by, request_id)
            SELECT stockroom_uuid7_at(id_prefix, id_base, n_orders + l.n),
                   row_product[l.k], row_warehouse[l.k], l.t, 0, l.qty,
                   row_on_hand[l.k], l.res_after, 'order', l.ref,
                   -- as inventory/services/bundle_lines.py's bundle_reason
                   CASE WHEN l.b IS NULL
                        THEN CASE WHEN l.t = 'RELEASE' THEN 'reservation hold expired' ELSE '' END
                        WHEN l.t = 'RELEASE' THEN 'bundle:' || l.b || ': reservation hold expired'
                        ELSE 'bundle:' || l.b END,
                   now_ts, CASE WHEN l.t = 'RELEASE' THEN 'system:reservation-sweeper' ELSE p_actor END,
                   p_request_id
            FROM unnest(l_row, l_qty, l_res_after, l_type, l_ref, l_bundle) WITH ORDINALITY
                 AS l(k, qty, res_after, t, ref, b, n)
            RETURNING id, product_id, warehouse_id, reserved_delta, on_hand_after,
                      reserved_after, reference_id, type, reason
        )
        SELECT coalesce(jsonb_agg(jsonb_build_array(
                   id, product_id, warehouse_id, reserved_delta, on_hand_after,
                   reserved_after, reference_id, reason))
                   FILTER (WHERE type = 'RESERVE'), '[]')
        INTO v_ledger FROM inserted;

        INSERT INTO inventory_reservationline
            (id, reservation_id, inventory_id, product_id, warehouse_id, quantity,
             quantity_fulfilled, quantity_released, status, bundle_id)
        SELECT stockroom_uuid7_at(id_prefix, id_base, n_orders + n_acc + l.n),
               new_ids[l.o], row_ids[l.k], row_product[l.k],
               row_warehouse[l.k], l.qty, 0, 0, 'active', bp.id
        FROM unnest(l_row, l_qty, l_order, l_type, l_bundle) WITH ORDINALITY
             AS l(k, qty, o, t, b, n)
        LEFT JOIN inventory_product bp ON bp.sku = l.b
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
    END IF;

    SELECT jsonb_agg(jsonb_build_array(o.s, CASE WHEN o.s = 'created' THEN o.id END, o.d)
                     ORDER BY o.n)
      INTO v_orders
    FROM unnest(o_status, new_ids, o_detail[1:n_orders]) WITH ORDINALITY AS o(s, id, d, n);
    RETURN jsonb_build_object(
        'orders', v_orders, 'changes', v_changes, 'ledger', v_ledger,
        'released', v_released, 'at', now_ts);
END;
$function$;
