CREATE OR REPLACE FUNCTION public.events_purchase_order_received()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- purchase_order.received per delivery booked (one receipt row each).
DECLARE
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                              stream, payload)
    SELECT v_pos, 'purchase_order.received', clock_timestamp(),
           coalesce(current_setting('stockroom.request_id', true), ''),
           '', w.code, 'po:' || po.number,
           jsonb_build_object('number', po.number, 'warehouse', w.code, 'status', po.status,
                              'receipt_id', n.key, 'lines', n.lines,
                              'ledger_ids', n.transaction_ids, 'created_by', n.created_by)
    FROM new_receipts n
    JOIN purchasing_purchaseorder po ON po.id = n.purchase_order_id
    JOIN warehouses_warehouse w ON w.id = po.warehouse_id
    ORDER BY n.id;
    RETURN NULL;
END;
$function$
