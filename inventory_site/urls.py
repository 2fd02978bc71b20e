"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import path

from inventory.admin_bulk import bulk_receive_view

urlpatterns = [
    # --- bulk work (issue 6): own admin pages, before the admin's catch-all ---
    path(
        "admin/bulk-receive/",
        admin.site.admin_view(bulk_receive_view),
        name="admin-bulk-receive",
    ),
    # --- end bulk work ---
    path("admin/", admin.site.urls),
]
