"""Admin for warehouses: Inventory managers add and edit them; deleting is not offered
to any role (stock and the ledger refer to warehouses)."""

from django.contrib import admin

from warehouses.models import Warehouse


@admin.register(Warehouse)
class WarehouseAdmin(admin.ModelAdmin):
    list_display = (
        "code",
        "name",
        "is_active",
        "count_every_days",
        "capacity",
        "latitude",
        "longitude",
    )
    list_filter = ("is_active",)
    search_fields = ("code", "name")  # also what autocomplete pickers search
    readonly_fields = ("created_at", "updated_at")
