-- Stock rows are born with their product's backorder allowance, set by the
-- database whatever the INSERT says: the product row is read FOR SHARE, which
-- conflicts with a stock-policy change's UPDATE (inventory/locks.py). The rule
-- is `inventory.models.Product.allowance`, in SQL.
--
-- The live definitions (see reserve_orders.sql for how a change lands).

CREATE OR REPLACE FUNCTION inventory_allowance_from_product()
RETURNS trigger
LANGUAGE plpgsql
AS $function$
DECLARE
    policy_allowance integer;
BEGIN
    SELECT CASE WHEN p.stock_policy = 'normal' THEN 0 ELSE p.backorder_limit END
      INTO policy_allowance
      FROM inventory_product p
     WHERE p.id = NEW.product_id
       FOR SHARE;
    IF FOUND THEN
        NEW.backorder_allowance := policy_allowance;
    END IF;  -- no product: the foreign key refuses the row
    RETURN NEW;
END;
$function$;

CREATE OR REPLACE TRIGGER inventory_allowance_from_product
    BEFORE INSERT ON inventory_inventory
    FOR EACH ROW EXECUTE FUNCTION inventory_allowance_from_product();
