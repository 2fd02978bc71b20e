CREATE OR REPLACE FUNCTION public.events_purchase_order_lines()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- purchase_order.created carries its lines: the lines are inserted after the order
-- row (another statement), so each line statement of the creating transaction
-- rewrites that transaction's created event with every line of the order. Lines
-- added by a later transaction (a draft the reorder job extends) emit nothing.
DECLARE
    v_pos xid8 := events_feed_position();  -- the feed position (events_feed_position.sql)
BEGIN
    UPDATE events_event e
    SET payload = e.payload || jsonb_build_object('lines', l.lines),
        feed_txid = greatest(e.feed_txid, v_pos)
    FROM (
        SELECT po.number,
               jsonb_agg(jsonb_build_object('sku', p.sku, 'quantity', pl.quantity_ordered)
                         ORDER BY p.sku) AS lines
        FROM (SELECT DISTINCT purchase_order_id FROM new_lines) n
        JOIN purchasing_purchaseorder po ON po.id = n.purchase_order_id
        JOIN purchasing_purchaseorderline pl ON pl.purchase_order_id = po.id
        JOIN inventory_product p ON p.id = pl.product_id
        GROUP BY po.number
    ) l
    WHERE e.feed_txid >= pg_current_xact_id()  -- this transaction's events file here
      AND e.txid = pg_current_xact_id()
      AND e.type = 'purchase_order.created'
      AND e.stream = 'po:' || l.number;
    RETURN NULL;
END;
$function$
