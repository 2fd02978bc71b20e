CREATE OR REPLACE FUNCTION public.events_reservation_created()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- reservation.created, once per reservation whose lines one statement inserted.
-- From the lines, not the reservation row: the batch function claims every order
-- id first and deletes the claims of orders it refuses; only created orders get lines.
DECLARE
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                              stream, payload)
    SELECT v_pos, 'reservation.created', statement_timestamp(),
           coalesce(current_setting('stockroom.request_id', true), ''),
           '', '', 'order:' || r.order_id,
           jsonb_build_object('order_id', r.order_id, 'reservation_id', r.id,
                              'status', r.status, 'expires_at', r.expires_at,
                              'created_by', r.created_by, 'lines', g.lines)
    FROM (
        SELECT n.reservation_id,
               jsonb_agg(jsonb_build_object('sku', p.sku, 'warehouse', w.code,
                                            'quantity', n.quantity) ORDER BY p.sku, w.code)
                   AS lines
        FROM new_lines n
        JOIN inventory_product p ON p.id = n.product_id
        JOIN warehouses_warehouse w ON w.id = n.warehouse_id
        GROUP BY n.reservation_id
    ) g
    JOIN inventory_reservation r ON r.id = g.reservation_id
    ORDER BY r.order_id;
    RETURN NULL;
END;
$function$
