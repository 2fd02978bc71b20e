-- Frozen copy of purchasing/sql/next_po_number.sql, loaded by migration 0004. Never edit
-- it: a later change to the function brings its own copy with its own migration.
--
-- purchasing_next_po_number(): the next purchase-order number, PO-000001 on
-- (sequence purchasing_po_number, created by purchasing migration 0003). plpgsql:
-- called once per row that gets a number, never inlined into a query.
--
-- The live definition: tests/database/test_sql_functions.py compares it with the
-- migrated database. To change it, edit this file and add a migration that loads
-- a frozen copy of it (purchasing/migrations/sql/<number>_next_po_number.sql).

CREATE OR REPLACE FUNCTION purchasing_next_po_number()
RETURNS text
LANGUAGE plpgsql
AS $function$
DECLARE
    n text := nextval('purchasing_po_number')::text;
BEGIN
    RETURN 'PO-' || lpad(n, greatest(6, length(n)), '0');
END
$function$;
