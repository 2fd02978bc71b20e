"""Permissions for the back-office pages.

`StaffAction` has no table (`managed = False`): it only carries the custom
permissions that the cycle count, transfer and receive pages check, so that
they can be granted to groups like any other permission
(`backoffice.cycle_count`, …; see `backoffice.roles`).
"""

from django.db import models


class StaffAction(models.Model):
    class Meta:
        managed = False
        default_permissions = ()
        verbose_name = "back-office action"
        permissions = [
            ("cycle_count", "Can perform cycle counts (stock adjustments)"),
            ("transfer_stock", "Can transfer stock between warehouses"),
            ("receive_stock", "Can receive stock directly"),
        ]

    def __str__(self) -> str:
        return "back-office action"


CYCLE_COUNT = "backoffice.cycle_count"
TRANSFER_STOCK = "backoffice.transfer_stock"
RECEIVE_STOCK = "backoffice.receive_stock"
