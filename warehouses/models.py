"""Warehouses: the places stock is held. Staff and the API refer to them by `code`."""

import uuid

from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models


class Warehouse(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    code = models.CharField(
        max_length=32,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9][A-Za-z0-9_-]*$",
                "Letters, digits, dashes and underscores, starting with a letter or digit.",
            )
        ],
        help_text="Short unique code used by the API and staff, e.g. BER-1.",
    )
    name = models.CharField(max_length=200)
    address = models.TextField(blank=True)
    latitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-90), MaxValueValidator(90)],
    )
    longitude = models.DecimalField(
        max_digits=9,
        decimal_places=6,
        null=True,
        blank=True,
        validators=[MinValueValidator(-180), MaxValueValidator(180)],
    )
    capacity = models.PositiveIntegerField(
        null=True, blank=True, help_text="Units the site can hold; informational."
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive warehouses take no new stock or reservations."
    )
    count_every_days = models.PositiveIntegerField(
        default=90,
        db_default=90,
        validators=[MinValueValidator(1)],
        help_text="Cycle-count schedule: each stock row is due a count this many days after "
        "its last count (never counted: due now). The start page lists rows due, oldest first.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(latitude__isnull=True)
                | models.Q(latitude__gte=-90, latitude__lte=90),
                name="warehouse_latitude_range",
            ),
            models.CheckConstraint(
                condition=models.Q(longitude__isnull=True)
                | models.Q(longitude__gte=-180, longitude__lte=180),
                name="warehouse_longitude_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.code} — {self.name}"
