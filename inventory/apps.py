from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import availability_cache, services

        # The availability read model hears every committed stock change.
        if availability_cache.apply_committed_changes not in services.COMMITTED_CHANGE_LISTENERS:
            services.COMMITTED_CHANGE_LISTENERS.append(availability_cache.apply_committed_changes)
