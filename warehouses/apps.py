from django.apps import AppConfig


class WarehousesConfig(AppConfig):
    name = "warehouses"
    default_auto_field = "django.db.models.BigAutoField"
