"""Purchasing errors: the same shape as stock errors (code, message, details, HTTP status).

They subclass `inventory.errors.InventoryError`, so the API's one exception
handler and the admin's `message_user` treat them like every other domain error.
"""

from inventory.errors import InventoryError


class PurchaseOrderNotFound(InventoryError):
    code = "not_found"
    http_status = 404
    default_message = "No such purchase order."


class WarehouseNotAllowed(InventoryError):
    """The acting user does not work at the purchase order's warehouse."""

    code = "warehouse_not_allowed"
    http_status = 403
    default_message = "You do not work at this purchase order's warehouse."


class PurchaseOrderClosed(InventoryError):
    code = "purchase_order_closed"
    http_status = 409
    default_message = "The purchase order is closed."


class InvalidStatusChange(InventoryError):
    code = "invalid_status_change"
    http_status = 409
    default_message = "The purchase order cannot move to that status."


class NotOnPurchaseOrder(InventoryError):
    code = "not_on_purchase_order"
    http_status = 409
    default_message = "SKU not on this purchase order."


class OverReceipt(InventoryError):
    """More would be received than was ordered; pass allow_over_receipt to accept."""

    code = "over_receipt"
    http_status = 409
    default_message = "More than was ordered; receiving it needs explicit approval."
