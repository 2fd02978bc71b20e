CREATE OR REPLACE FUNCTION public.events_transfer_received()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- transfer.received when a two-step transfer leaves `shipped` (status received or
-- received_short). The receipt (inventory.services.transfers.transfer_receive)
-- writes the destination's ledger rows (TRANSFER, then WRITE_OFF for units short)
-- and every line's quantity_received before this status update, its last
-- statement: here the receipt is complete.
DECLARE
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                              stream, payload)
    SELECT v_pos, 'transfer.received', clock_timestamp(),
           coalesce(current_setting('stockroom.request_id', true), ''),
           '', dst.code, 'transfer:' || n.transfer_id,
           jsonb_build_object(
               'transfer_id', n.transfer_id, 'status', n.status,
               'source', src.code, 'destination', dst.code,
               'expected_date', n.expected_date,
               'received_by', n.received_by, 'received_at', n.received_at,
               'receive_reason', n.receive_reason,
               'lines', (SELECT jsonb_agg(jsonb_build_object(
                                    'sku', p.sku, 'quantity_shipped', l.quantity_shipped,
                                    'quantity_received', l.quantity_received,
                                    'quantity_short', l.quantity_shipped - l.quantity_received)
                                    ORDER BY p.sku)
                         FROM inventory_transferline l
                         JOIN inventory_product p ON p.id = l.product_id
                         WHERE l.transfer_id = n.id),
               'ledger_ids', (SELECT coalesce(jsonb_agg(x.id ORDER BY x.created_at, x.id),
                                              '[]'::jsonb)
                              FROM inventory_inventorytransaction x
                              WHERE x.reference_type = 'transfer'
                                AND x.reference_id = n.transfer_id
                                AND x.warehouse_id = n.destination_id))
    FROM new_transfers n
    JOIN old_transfers o ON o.id = n.id
    JOIN warehouses_warehouse src ON src.id = n.source_id
    JOIN warehouses_warehouse dst ON dst.id = n.destination_id
    WHERE o.status = 'shipped' AND n.status <> 'shipped'
    ORDER BY n.transfer_id;
    RETURN NULL;
END;
$function$
