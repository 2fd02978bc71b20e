"""Errors of the events API, in the project's error format (api.exceptions handles
every `InventoryError` subclass by its code and HTTP status)."""

from inventory.errors import InventoryError


class CursorExpired(InventoryError):
    code = "cursor_expired"
    http_status = 410
    default_message = (
        "The cursor points before events that retention already deleted; "
        "start again without `after` (and re-read current state)."
    )
