"""API clients in the admin: see and revoke them (keys are created with create_api_client)."""

from django.contrib import admin

from api.models import ApiClient
from api.services import api_client_revoke


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "scopes", "key_prefix", "is_active", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    search_fields = ["name", "key_prefix"]
    readonly_fields = [
        "name",
        "scopes",
        "key_prefix",
        "is_active",
        "created_at",
        "revoked_at",
        "last_used_at",
    ]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False  # the key must be shown once: use `manage.py create_api_client`

    @admin.action(description="Revoke the selected clients' keys")
    def revoke(self, request, queryset):
        for client in queryset.filter(is_active=True):
            api_client_revoke(client=client)
        self.message_user(request, "Revoked.")
