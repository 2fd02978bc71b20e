from django.apps import AppConfig


class InventoryConfig(AppConfig):
    name = "inventory"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import availability_cache, services

        # The availability read model hears every committed stock change.
        if availability_cache.apply_committed_changes not in services.COMMITTED_CHANGE_LISTENERS:
            services.COMMITTED_CHANGE_LISTENERS.append(availability_cache.apply_committed_changes)
        # ...and every hold whose expiry a confirmation moved (no stock changed).
        if availability_cache.apply_hold_changes not in services.HOLD_CHANGE_LISTENERS:
            services.HOLD_CHANGE_LISTENERS.append(availability_cache.apply_hold_changes)
