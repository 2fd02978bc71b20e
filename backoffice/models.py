"""Permissions for the back-office pages.

`StaffAction` has no table (`managed = False`): it only carries the custom
permissions that the cycle count, transfer and receive pages check, so that
they can be granted to groups like any other permission
(`backoffice.cycle_count`, …; see `backoffice.roles`).
"""

from django.conf import settings
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
            ("act_in_all_warehouses", "Can act in all warehouses (whatever Works at says)"),
            ("move_stock_state", "Can move stock between sellable, damaged and quality control"),
            ("write_off_stock", "Can write off damaged or quality-control stock"),
            ("book_return", "Can book customer returns at the returns dock"),
        ]

    def __str__(self) -> str:
        return "back-office action"


CYCLE_COUNT = "backoffice.cycle_count"
TRANSFER_STOCK = "backoffice.transfer_stock"
RECEIVE_STOCK = "backoffice.receive_stock"
ALL_WAREHOUSES = "backoffice.act_in_all_warehouses"
MOVE_STOCK_STATE = "backoffice.move_stock_state"
WRITE_OFF_STOCK = "backoffice.write_off_stock"
BOOK_RETURN = "backoffice.book_return"


class StaffWarehouse(models.Model):
    """A staff user works at a warehouse (`backoffice.access`).

    A user with rows here acts only in those warehouses: counts, direct
    receipts, transfers out of, and purchase-order deliveries into them. A user
    with no row acts in **no** warehouse, unless they hold
    `backoffice.act_in_all_warehouses` or are a superuser (then every warehouse,
    whatever the rows say). Deleting a warehouse deletes its rows, which only
    narrows access. Everyone may still *see* every warehouse's stock.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_warehouses"
    )
    warehouse = models.ForeignKey(
        "warehouses.Warehouse", on_delete=models.CASCADE, related_name="staff"
    )

    class Meta:
        verbose_name = "warehouse this user works at"
        verbose_name_plural = "warehouses this user works at"
        constraints = [
            models.UniqueConstraint(fields=["user", "warehouse"], name="staff_warehouse_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.warehouse}"
