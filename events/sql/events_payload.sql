CREATE OR REPLACE FUNCTION public.events_payload(e events_event)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
-- An event's payload (`data`) as the feed and webhooks return it. The hot types of
-- the batched path (stock.changed, availability.changed, reservation.created) are
-- stored in typed columns by their triggers (events migration 0005: building jsonb
-- per row in the writing statement was most of the events' cost) and rendered
-- here, at read time, with the keys, values and list order the triggers used to
-- store; every other type (and every event written before 0005) keeps its stored
-- jsonb. One expression without sub-selects (the lists of one element, the usual
-- case, built directly; longer ones by events_json_zip()): PostgreSQL inlines it.
SELECT CASE
    WHEN e.payload IS NOT NULL THEN e.payload
    WHEN e.type = 'stock.changed' THEN jsonb_build_object(
        'sku', e.sku, 'warehouse', e.warehouse, 'on_hand', e.on_hand,
        'reserved', e.reserved, 'available', e.available,
        'backorder_allowance', e.backorder_allowance, 'version', e.version,
        'on_hand_delta', e.on_hand_delta, 'reserved_delta', e.reserved_delta,
        'ledger_ids', to_jsonb(e.ledger_ids), 'ledger_types', to_jsonb(e.ledger_types),
        'references', CASE coalesce(cardinality(e.reference_ids), 0)
            WHEN 0 THEN '[]'::jsonb
            WHEN 1 THEN jsonb_build_array(jsonb_build_object(
                'type', e.reference_types[1], 'id', e.reference_ids[1]))
            ELSE events_json_zip('type', to_jsonb(e.reference_types),
                                 'id', to_jsonb(e.reference_ids))
        END)
    WHEN e.type = 'availability.changed' THEN jsonb_build_object(
        'sku', e.sku, 'available', e.available,
        'warehouses', CASE cardinality(e.warehouse_codes)
            WHEN 1 THEN jsonb_build_array(jsonb_build_object(
                'warehouse', e.warehouse_codes[1], 'available', e.warehouse_available[1],
                'active', e.warehouse_active[1]))
            ELSE events_json_zip('warehouse', to_jsonb(e.warehouse_codes),
                                 'available', to_jsonb(e.warehouse_available),
                                 'active', to_jsonb(e.warehouse_active))
        END)
    WHEN e.type = 'reservation.created' THEN jsonb_build_object(
        'order_id', e.order_id, 'reservation_id', e.reservation_id, 'status', e.status,
        'expires_at', e.expires_at, 'created_by', e.created_by,
        'lines', CASE cardinality(e.line_skus)
            WHEN 1 THEN jsonb_build_array(jsonb_build_object(
                'sku', e.line_skus[1], 'warehouse', e.line_warehouses[1],
                'quantity', e.line_quantities[1]))
            ELSE events_json_zip('sku', to_jsonb(e.line_skus),
                                 'warehouse', to_jsonb(e.line_warehouses),
                                 'quantity', to_jsonb(e.line_quantities))
        END)
END
$function$
