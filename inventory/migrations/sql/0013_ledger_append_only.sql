-- Frozen copy of inventory/sql/ledger_append_only.sql, loaded by migration 0013. Never edit it:
-- a later change to the function brings its own copy with its own migration.
--
-- The ledger (inventory_inventorytransaction) is append-only: UPDATE and DELETE
-- raise. TRUNCATE is not trapped (the test runner flushes tables with it).
--
-- The live definitions (see reserve_orders.sql for how a change lands).

CREATE OR REPLACE FUNCTION inventory_ledger_append_only()
RETURNS trigger
LANGUAGE plpgsql
AS $function$
BEGIN
    RAISE EXCEPTION 'inventory ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'raise_exception';
END;
$function$;

CREATE OR REPLACE TRIGGER inventory_ledger_no_update_delete
    BEFORE DELETE OR UPDATE ON inventory_inventorytransaction
    FOR EACH ROW EXECUTE FUNCTION inventory_ledger_append_only();
