from django.apps import AppConfig


class PurchasingConfig(AppConfig):
    name = "purchasing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from inventory.services import COMMITTED_CHANGE_LISTENERS

        from .listeners import enqueue_reorder_checks

        if enqueue_reorder_checks not in COMMITTED_CHANGE_LISTENERS:
            COMMITTED_CHANGE_LISTENERS.append(enqueue_reorder_checks)
