CREATE OR REPLACE FUNCTION public.events_feed_position()
 RETURNS xid8
 LANGUAGE sql
AS $function$
-- The feed position of the events the calling statement writes: the newest
-- transaction id assigned when it runs (snapshot xmax - 1), never below the
-- writer's own id. A writer that waited for a row lock runs this after the lock
-- holder committed, so its change files after the holder's: per row, feed order
-- is commit order. Every running transaction's id is at least the feed horizon
-- (the oldest running id), so what it writes still files after every event the
-- feed has returned (docs/EVENTS.md, "The cursor rule").
SELECT greatest(pg_current_xact_id(),
                (pg_snapshot_xmax(pg_current_snapshot())::text::bigint - 1)::text::xid8)
$function$
