"""API clients (token holders with scopes) and idempotency records for `/stock/*`.

A client's key is shown once, when it is created; only its SHA-256 hash is
stored, so a database leak does not leak usable keys.
"""

import uuid

from django.db import models
from django.db.models import Q


class Scope(models.TextChoices):
    STOREFRONT = "storefront", "Storefront: availability and reservations"
    OPERATIONS = "operations", "Operations: stock operations, catalogue sync and reads"
    READ = "read", "Read: availability and lists only"


class ApiClient(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=100, unique=True)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters of the key, to tell keys apart in logs and the admin.
    key_prefix = models.CharField(max_length=8, editable=False)
    scopes = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    # DRF treats the authenticated client as `request.user`.
    is_authenticated = True
    is_anonymous = False

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({', '.join(self.scopes)})"

    def has_any_scope(self, scopes) -> bool:
        return bool(set(self.scopes) & set(scopes))


class IdempotencyStatus(models.TextChoices):
    RUNNING = "running", "Running"
    DONE = "done", "Done"


class IdempotencyRecord(models.Model):
    """One `Idempotency-Key` of one client: the request's fingerprint and its response.

    Inserted (committed) before the request runs, so a concurrent duplicate sees
    it as running; the response is stored when the request succeeds. A failed
    request deletes its record so the key can be retried.
    """

    id = models.BigAutoField(primary_key=True)
    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64)
    status = models.CharField(
        max_length=8, choices=IdempotencyStatus.choices, default=IdempotencyStatus.RUNNING
    )
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "key"], name="idempotency_client_key_unique"),
            models.CheckConstraint(
                condition=Q(status="running") | Q(response_status__isnull=False),
                name="idempotency_done_has_response",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status})"
