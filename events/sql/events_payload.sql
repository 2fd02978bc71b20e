CREATE OR REPLACE FUNCTION public.events_payload(e events_event)
 RETURNS jsonb
 LANGUAGE sql
 STABLE
AS $function$
-- An event's payload (`data`) as the feed and webhooks return it. The hot types of
-- the batched path (stock.changed, availability.changed, reservation.created) are
-- stored in typed columns by their triggers (events migration 0005: building jsonb
-- per row in the writing statement was most of the events' cost) and rendered
-- here, at read time, with the keys and values the triggers used to store; every
-- other type (and every event written before 0005) keeps its stored jsonb.
SELECT CASE
    WHEN e.payload IS NOT NULL THEN e.payload
    WHEN e.type = 'stock.changed' THEN jsonb_build_object(
        'sku', e.sku, 'warehouse', e.warehouse, 'on_hand', e.on_hand,
        'reserved', e.reserved, 'available', e.available,
        'backorder_allowance', e.backorder_allowance, 'version', e.version,
        'on_hand_delta', e.on_hand_delta, 'reserved_delta', e.reserved_delta,
        'ledger_ids', to_jsonb(e.ledger_ids), 'ledger_types', to_jsonb(e.ledger_types),
        'references', coalesce(
            (SELECT jsonb_agg(jsonb_build_object('type', r.t, 'id', r.i) ORDER BY r.k)
             FROM unnest(e.reference_types, e.reference_ids) WITH ORDINALITY AS r(t, i, k)),
            '[]'))
    WHEN e.type = 'availability.changed' THEN jsonb_build_object(
        'sku', e.sku, 'available', e.available,
        'warehouses',
            (SELECT jsonb_agg(jsonb_build_object('warehouse', w.c, 'available', w.a,
                                                 'active', w.x) ORDER BY w.k)
             FROM unnest(e.warehouse_codes, e.warehouse_available, e.warehouse_active)
                  WITH ORDINALITY AS w(c, a, x, k)))
    WHEN e.type = 'reservation.created' THEN jsonb_build_object(
        'order_id', e.order_id, 'reservation_id', e.reservation_id, 'status', e.status,
        'expires_at', e.expires_at, 'created_by', e.created_by,
        'lines',
            (SELECT jsonb_agg(jsonb_build_object('sku', l.s, 'warehouse', l.w,
                                                 'quantity', l.q) ORDER BY l.k)
             FROM unnest(e.line_skus, e.line_warehouses, e.line_quantities)
                  WITH ORDINALITY AS l(s, w, q, k)))
END
$function$
