-- Bundles (issue #16): the database refuses what the services refuse, so a raw
-- SQL write cannot break the model either. A bundle (`is_bundle`) has no stock
-- rows of its own; its components are never bundles (no nesting, hence no
-- cycles); a component's quantity is >= 1 (CHECK bundle_component_qty_gt_0).
--
-- Races: each guard reads the product row(s) it depends on FOR SHARE, which
-- conflicts with the UPDATE that flips `is_bundle` (FOR NO KEY UPDATE), and
-- that UPDATE's own guard runs after it holds the row: whichever commits
-- first, the other sees it (READ COMMITTED: each statement a new snapshot).
-- SQLSTATE 23514 (check_violation), like a CHECK constraint.
--
-- The live definitions (see reserve_orders.sql for how a change lands).

CREATE OR REPLACE FUNCTION inventory_bundle_has_no_stock()
RETURNS trigger
LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM 1 FROM inventory_product p
     WHERE p.id = NEW.product_id AND p.is_bundle
       FOR SHARE;
    IF FOUND THEN
        RAISE EXCEPTION 'a bundle has no stock rows (product %)', NEW.product_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'inventory_bundle_has_no_stock';
    END IF;
    RETURN NEW;
END;
$function$;

CREATE OR REPLACE TRIGGER inventory_bundle_has_no_stock
    BEFORE INSERT OR UPDATE OF product_id ON inventory_inventory
    FOR EACH ROW EXECUTE FUNCTION inventory_bundle_has_no_stock();

CREATE OR REPLACE FUNCTION inventory_bundle_component_guard()
RETURNS trigger
LANGUAGE plpgsql
AS $function$
BEGIN
    PERFORM 1 FROM inventory_product p
     WHERE p.id = NEW.bundle_id AND p.is_bundle
       FOR SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'components belong to a bundle (product % is not one)', NEW.bundle_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'bundle_component_of_a_bundle';
    END IF;
    PERFORM 1 FROM inventory_product p
     WHERE p.id = NEW.component_id AND p.is_bundle
       FOR SHARE;
    IF FOUND THEN
        RAISE EXCEPTION 'a component cannot be a bundle (product %)', NEW.component_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'bundle_component_not_a_bundle';
    END IF;
    RETURN NEW;
END;
$function$;

CREATE OR REPLACE TRIGGER inventory_bundle_component_guard
    BEFORE INSERT OR UPDATE OF bundle_id, component_id ON inventory_bundlecomponent
    FOR EACH ROW EXECUTE FUNCTION inventory_bundle_component_guard();

CREATE OR REPLACE FUNCTION inventory_bundle_flag_guard()
RETURNS trigger
LANGUAGE plpgsql
AS $function$
BEGIN
    IF NEW.is_bundle THEN
        IF EXISTS (SELECT 1 FROM inventory_inventory i WHERE i.product_id = NEW.id) THEN
            RAISE EXCEPTION 'product % has stock rows: it cannot become a bundle', NEW.sku
                USING ERRCODE = 'check_violation', CONSTRAINT = 'inventory_bundle_has_no_stock';
        END IF;
        IF EXISTS (SELECT 1 FROM inventory_bundlecomponent c WHERE c.component_id = NEW.id) THEN
            RAISE EXCEPTION 'product % is a component: it cannot become a bundle', NEW.sku
                USING ERRCODE = 'check_violation', CONSTRAINT = 'bundle_component_not_a_bundle';
        END IF;
    ELSIF EXISTS (SELECT 1 FROM inventory_bundlecomponent c WHERE c.bundle_id = NEW.id) THEN
        RAISE EXCEPTION 'product % has components: it stays a bundle', NEW.sku
            USING ERRCODE = 'check_violation', CONSTRAINT = 'bundle_component_of_a_bundle';
    END IF;
    RETURN NEW;
END;
$function$;

CREATE OR REPLACE TRIGGER inventory_bundle_flag_guard
    BEFORE UPDATE OF is_bundle ON inventory_product
    FOR EACH ROW WHEN ((old.is_bundle IS DISTINCT FROM new.is_bundle))
    EXECUTE FUNCTION inventory_bundle_flag_guard();
