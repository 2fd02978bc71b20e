CREATE OR REPLACE FUNCTION public.events_reservation_created()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- reservation.created, once per reservation whose lines one statement inserted.
-- From the lines, not the reservation row: the batch function claims every order
-- id first and deletes the claims of orders it refuses; only created orders get lines.
-- Stored in typed columns (the reservation as it is now, its lines sorted by SKU and
-- warehouse code); events_payload() renders the documented JSON at read time.
DECLARE
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    IF NOT EXISTS (SELECT FROM new_lines) THEN
        RETURN NULL;  -- no lines (a declined one-order statement of the reserve function)
    END IF;
    INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                              stream, order_id, reservation_id, status, expires_at,
                              created_by, line_skus, line_warehouses, line_quantities)
    SELECT v_pos, 'reservation.created', statement_timestamp(),
           coalesce(current_setting('stockroom.request_id', true), ''),
           '', '', 'order:' || r.order_id, r.order_id, r.id, r.status, r.expires_at,
           r.created_by, g.skus, g.codes, g.quantities
    FROM (
        -- Input sorted once by reservation, SKU and warehouse code: each group's
        -- arrays follow it (no sort per group).
        SELECT x.reservation_id, array_agg(x.sku) AS skus, array_agg(x.code) AS codes,
               array_agg(x.quantity) AS quantities
        FROM (
            SELECT n.reservation_id, p.sku::text AS sku, w.code::text AS code, n.quantity
            FROM new_lines n
            JOIN inventory_product p ON p.id = n.product_id
            JOIN warehouses_warehouse w ON w.id = n.warehouse_id
            ORDER BY n.reservation_id, p.sku, w.code
        ) x
        GROUP BY x.reservation_id
    ) g
    JOIN inventory_reservation r ON r.id = g.reservation_id
    ORDER BY r.order_id;
    RETURN NULL;
END;
$function$
