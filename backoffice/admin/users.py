"""The user admin page, with the warehouses each staff user works at."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from ..models import StaffWarehouse


class StaffWarehouseInline(admin.TabularInline):
    model = StaffWarehouse
    extra = 0
    autocomplete_fields = ["warehouse"]
    verbose_name = "warehouse"
    verbose_name_plural = (
        "Works at (counts, receipts, transfers out and deliveries only in these; "
        "none = no warehouse, unless the user may act in all warehouses)"
    )


User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class StockroomUserAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, StaffWarehouseInline]
