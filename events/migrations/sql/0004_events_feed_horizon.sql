CREATE OR REPLACE FUNCTION public.events_feed_horizon()
 RETURNS xid8
 LANGUAGE sql
 STABLE
AS $function$
-- The feed returns events filed below this position (docs/EVENTS.md, "The cursor
-- rule"): the oldest transaction of the statement's snapshot still running, except
-- those pg_stat_activity shows in another database (they cannot write this
-- database's events; a backend never changes database, so that is never wrong).
-- An id not shown there (finished since, prepared, or hidden from this role: grant
-- pg_read_all_stats) counts as running here. No running one: snapshot xmax.
SELECT coalesce(min(x), pg_snapshot_xmax(pg_current_snapshot()))
FROM pg_snapshot_xip(pg_current_snapshot()) AS x
WHERE x::xid NOT IN (
    SELECT a.backend_xid FROM pg_stat_activity a
    WHERE a.backend_xid IS NOT NULL
      AND a.datid <> (SELECT d.oid FROM pg_database d WHERE d.datname = current_database()))
$function$
