"""Top-level URL configuration."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from backoffice.views import bulk_receive_view

from . import health, views

urlpatterns = [
    path("", views.front_door, name="front-door"),
    path("health/live", health.live, name="health-live"),
    path("health/ready", health.ready, name="health-ready"),
    # --- bulk work (issue 6): own admin pages, before the admin's catch-all ---
    path(
        "admin/bulk-receive/",
        admin.site.admin_view(bulk_receive_view),
        name="admin-bulk-receive",
    ),
    # --- end bulk work ---
    path("admin/", admin.site.urls),
    # --- API (issue 3) ---
    path("api/v1/", include("events.urls")),  # events feed and webhooks (issue 14)
    path("api/v1/", include("api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
