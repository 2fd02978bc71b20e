CREATE OR REPLACE FUNCTION public.events_purchase_order_created()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- purchase_order.created per purchase order one statement inserted.
DECLARE
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                              stream, payload)
    SELECT v_pos, 'purchase_order.created', clock_timestamp(),
           coalesce(current_setting('stockroom.request_id', true), ''),
           '', w.code, 'po:' || n.number,
           jsonb_build_object('number', n.number, 'supplier', s.name, 'warehouse', w.code,
                              'status', n.status, 'origin', n.origin,
                              'expected_arrival_date', n.expected_arrival_date,
                              'created_by', n.created_by,
                              'lines', '[]'::jsonb)  -- filled by events_purchase_order_lines
    FROM new_orders n
    JOIN purchasing_supplier s ON s.id = n.supplier_id
    JOIN warehouses_warehouse w ON w.id = n.warehouse_id
    ORDER BY n.number;
    RETURN NULL;
END;
$function$
