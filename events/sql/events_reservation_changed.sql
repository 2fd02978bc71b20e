CREATE OR REPLACE FUNCTION public.events_reservation_changed()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- reservation.released|fulfilled|expired when a reservation leaves `active`;
-- reservation.confirmed when `confirmed_at` is set or moves (a confirm).
DECLARE
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                              stream, payload)
    SELECT v_pos, e.type, clock_timestamp(),
           coalesce(current_setting('stockroom.request_id', true), ''),
           '', '', 'order:' || n.order_id,
           jsonb_build_object('order_id', n.order_id, 'reservation_id', n.id,
                              'status', n.status, 'expires_at', n.expires_at,
                              'confirmed_at', n.confirmed_at, 'confirmed_by', n.confirmed_by,
                              'lines', (SELECT jsonb_agg(jsonb_build_object(
                                            'sku', p.sku, 'warehouse', w.code,
                                            'quantity', l.quantity,
                                            'quantity_fulfilled', l.quantity_fulfilled,
                                            'quantity_released', l.quantity_released,
                                            'status', l.status) ORDER BY p.sku, w.code)
                                        FROM inventory_reservationline l
                                        JOIN inventory_product p ON p.id = l.product_id
                                        JOIN warehouses_warehouse w ON w.id = l.warehouse_id
                                        WHERE l.reservation_id = n.id))
    FROM new_reservations n
    JOIN old_reservations o ON o.id = n.id
    CROSS JOIN LATERAL (
        SELECT 'reservation.confirmed' AS type, 1 AS k
        WHERE n.confirmed_at IS NOT NULL AND n.confirmed_at IS DISTINCT FROM o.confirmed_at
        UNION ALL
        SELECT 'reservation.' || n.status, 2
        WHERE o.status = 'active' AND n.status IN ('released', 'fulfilled', 'expired')
    ) e
    ORDER BY n.order_id, e.k;
    RETURN NULL;
END;
$function$
