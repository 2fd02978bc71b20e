CREATE OR REPLACE FUNCTION public.events_purchase_order_dropped()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- A purchase order created and deleted in the same transaction (the reorder job
-- drops a draft whose every line lost a race) never existed for consumers.
BEGIN
    DELETE FROM events_event e
    USING old_orders o
    WHERE e.feed_txid >= pg_current_xact_id()  -- this transaction's events file here
      AND e.txid = pg_current_xact_id()
      AND e.type = 'purchase_order.created'
      AND e.stream = 'po:' || o.number;
    RETURN NULL;
END;
$function$
