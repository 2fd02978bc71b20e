CREATE OR REPLACE FUNCTION public.events_transfer_shipped()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- transfer.shipped per two-step transfer whose lines the statement inserted. The
-- ship (inventory.services.transfers.transfer_ship) writes the source's ledger
-- rows, then the transfer row, then every line in one statement, its last: here
-- the shipment is complete (lines by SKU, the source's ledger rows oldest first).
-- Lines are written only by the ship, so each transfer emits once.
DECLARE
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    INSERT INTO events_event (feed_txid, type, occurred_at, request_id, sku, warehouse,
                              stream, payload)
    SELECT v_pos, 'transfer.shipped', clock_timestamp(),
           coalesce(current_setting('stockroom.request_id', true), ''),
           '', src.code, 'transfer:' || t.transfer_id,
           jsonb_build_object(
               'transfer_id', t.transfer_id, 'status', t.status,
               'source', src.code, 'destination', dst.code,
               'expected_date', t.expected_date, 'reason', t.reason,
               'shipped_by', t.shipped_by, 'shipped_at', t.shipped_at,
               'lines', (SELECT jsonb_agg(jsonb_build_object(
                                    'sku', p.sku, 'quantity_shipped', l.quantity_shipped)
                                    ORDER BY p.sku)
                         FROM inventory_transferline l
                         JOIN inventory_product p ON p.id = l.product_id
                         WHERE l.transfer_id = t.id),
               'ledger_ids', (SELECT coalesce(jsonb_agg(x.id ORDER BY x.created_at, x.id),
                                              '[]'::jsonb)
                              FROM inventory_inventorytransaction x
                              WHERE x.reference_type = 'transfer'
                                AND x.reference_id = t.transfer_id
                                AND x.warehouse_id = t.source_id))
    FROM (SELECT DISTINCT transfer_id FROM new_lines) n
    JOIN inventory_transfer t ON t.id = n.transfer_id
    JOIN warehouses_warehouse src ON src.id = t.source_id
    JOIN warehouses_warehouse dst ON dst.id = t.destination_id
    ORDER BY t.transfer_id;
    RETURN NULL;
END;
$function$
