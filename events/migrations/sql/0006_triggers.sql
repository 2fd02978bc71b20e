-- The triggers that write events in the same transaction as the change
-- (statement-level with transition tables: one batch statement, one set-based emit).
DROP TRIGGER IF EXISTS events_stock ON inventory_inventorytransaction;
CREATE TRIGGER events_stock AFTER INSERT ON inventory_inventorytransaction
    REFERENCING NEW TABLE AS new_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION events_stock_emit();

DROP TRIGGER IF EXISTS events_reservation_created ON inventory_reservationline;
CREATE TRIGGER events_reservation_created AFTER INSERT ON inventory_reservationline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION events_reservation_created();

DROP TRIGGER IF EXISTS events_reservation_changed ON inventory_reservation;
CREATE TRIGGER events_reservation_changed AFTER UPDATE ON inventory_reservation
    REFERENCING OLD TABLE AS old_reservations NEW TABLE AS new_reservations
    FOR EACH STATEMENT EXECUTE FUNCTION events_reservation_changed();

DROP TRIGGER IF EXISTS events_purchase_order_created ON purchasing_purchaseorder;
CREATE TRIGGER events_purchase_order_created AFTER INSERT ON purchasing_purchaseorder
    REFERENCING NEW TABLE AS new_orders
    FOR EACH STATEMENT EXECUTE FUNCTION events_purchase_order_created();

DROP TRIGGER IF EXISTS events_purchase_order_dropped ON purchasing_purchaseorder;
CREATE TRIGGER events_purchase_order_dropped AFTER DELETE ON purchasing_purchaseorder
    REFERENCING OLD TABLE AS old_orders
    FOR EACH STATEMENT EXECUTE FUNCTION events_purchase_order_dropped();

DROP TRIGGER IF EXISTS events_purchase_order_received ON purchasing_purchaseorderreceipt;
CREATE TRIGGER events_purchase_order_received AFTER INSERT ON purchasing_purchaseorderreceipt
    REFERENCING NEW TABLE AS new_receipts
    FOR EACH STATEMENT EXECUTE FUNCTION events_purchase_order_received();

DROP TRIGGER IF EXISTS events_purchase_order_lines ON purchasing_purchaseorderline;
CREATE TRIGGER events_purchase_order_lines AFTER INSERT ON purchasing_purchaseorderline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION events_purchase_order_lines();

DROP TRIGGER IF EXISTS events_transfer_shipped ON inventory_transferline;
CREATE TRIGGER events_transfer_shipped AFTER INSERT ON inventory_transferline
    REFERENCING NEW TABLE AS new_lines
    FOR EACH STATEMENT EXECUTE FUNCTION events_transfer_shipped();

DROP TRIGGER IF EXISTS events_transfer_received ON inventory_transfer;
CREATE TRIGGER events_transfer_received AFTER UPDATE ON inventory_transfer
    REFERENCING OLD TABLE AS old_transfers NEW TABLE AS new_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION events_transfer_received();
