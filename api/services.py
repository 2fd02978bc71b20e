"""Writes for the API's own data: clients and idempotency records.

Stock is never changed here; the views call `inventory.services` for that.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from inventory import errors

from .models import ApiClient, IdempotencyRecord, IdempotencyStatus, Scope


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def api_client_create(*, name: str, scopes: list[str]) -> tuple[ApiClient, str]:
    """Create a client; returns it and its key (shown once, only the hash is stored)."""
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise errors.InvalidInput("A client name of 1 to 100 characters is required.")
    scopes = sorted(set(scopes))
    if not scopes or set(scopes) - set(Scope.values):
        raise errors.InvalidInput(
            f"Scopes must be one or more of {', '.join(Scope.values)}.",
            details={"scopes": scopes, "allowed": Scope.values},
        )
    key = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            client = ApiClient.objects.create(
                name=name, key_hash=hash_key(key), key_prefix=key[:8], scopes=scopes
            )
    except IntegrityError as exc:
        raise errors.InvalidInput(f"A client named {name!r} already exists.") from exc
    return client, key


def api_client_revoke(*, client: ApiClient) -> ApiClient:
    client.is_active = False
    client.revoked_at = timezone.now()
    client.save(update_fields=["is_active", "revoked_at"])
    forget_authenticated_clients()
    return client


# Authenticated clients, per process, for STOCKROOM_API_CLIENT_CACHE_SECONDS: a
# storefront's every request (a sold-out refusal included) then needs no
# database query to authenticate. A revocation takes effect at once in the
# process that made it and within that many seconds everywhere else.
_client_cache: dict[str, tuple[float, ApiClient]] = {}
_client_cache_lock = threading.Lock()


def forget_authenticated_clients() -> None:
    with _client_cache_lock:
        _client_cache.clear()


def api_client_authenticate(*, key: str) -> ApiClient | None:
    """The active client holding `key`, or None."""
    key_hash = hash_key(key)
    ttl = settings.STOCKROOM_API_CLIENT_CACHE_SECONDS
    now_mono = time.monotonic()
    with _client_cache_lock:
        cached = _client_cache.get(key_hash)
    if cached is not None and cached[0] > now_mono:
        return cached[1]
    client = ApiClient.objects.filter(key_hash=key_hash, is_active=True).first()
    if client is not None:
        now = timezone.now()
        # Record use at most once a minute: no write per request.
        if client.last_used_at is None or now - client.last_used_at > timedelta(minutes=1):
            ApiClient.objects.filter(pk=client.pk).update(last_used_at=now)
            client.last_used_at = now
        if ttl > 0:
            with _client_cache_lock:
                if len(_client_cache) > 10_000:
                    _client_cache.clear()
                _client_cache[key_hash] = (now_mono + ttl, client)
    return client


# --- Idempotency-Key ----------------------------------------------------


class IdempotencyInProgress(errors.InventoryError):
    code = "idempotency_in_progress"
    http_status = 409
    default_message = "A request with this idempotency key is still running; retry shortly."


@dataclass
class StoredResponse:
    status: int
    body: Any


def request_fingerprint(*, method: str, path: str, body: Any) -> str:
    canonical = json.dumps(
        {"method": method.upper(), "path": path, "body": body}, sort_keys=True, default=str
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotency_begin(
    *, client: ApiClient, key: str, fingerprint: str
) -> IdempotencyRecord | StoredResponse:
    """Claim `key` for this request, or return the stored response of its first use.

    Raises IdempotencyConflict (422) for a different request under the same key and
    IdempotencyInProgress (409) while the first is still running. A record left
    running for longer than STOCKROOM_IDEMPOTENCY_STALE_SECONDS (its process died)
    is taken over; the stock services are themselves idempotent by the same key,
    so a takeover never applies a change twice.
    """
    if not key or len(key) > 200:
        raise errors.InvalidInput("Idempotency-Key must be 1 to 200 characters.")
    try:
        with transaction.atomic():
            return IdempotencyRecord.objects.create(client=client, key=key, fingerprint=fingerprint)
    except IntegrityError:
        pass
    with transaction.atomic():
        record = (
            IdempotencyRecord.objects.select_for_update().filter(client=client, key=key).first()
        )
        if record is None:  # deleted by a failed first request meanwhile: claim again
            return IdempotencyRecord.objects.create(client=client, key=key, fingerprint=fingerprint)
        if record.fingerprint != fingerprint:
            raise errors.IdempotencyConflict(details={"idempotency_key": key})
        if record.status == IdempotencyStatus.DONE:
            return StoredResponse(record.response_status, record.response_body)
        stale_after = timedelta(seconds=settings.STOCKROOM_IDEMPOTENCY_STALE_SECONDS)
        if timezone.now() - record.updated_at < stale_after:
            raise IdempotencyInProgress(details={"idempotency_key": key})
        record.save(update_fields=["updated_at"])
        return record


def idempotency_finish(*, record: IdempotencyRecord, status: int, body: Any) -> None:
    """Store the response of a successful request under its key."""
    record.status = IdempotencyStatus.DONE
    record.response_status = status
    record.response_body = body
    record.save(update_fields=["status", "response_status", "response_body", "updated_at"])


def idempotency_abandon(*, record: IdempotencyRecord) -> None:
    """The request failed and changed nothing: free the key for a retry."""
    IdempotencyRecord.objects.filter(pk=record.pk, status=IdempotencyStatus.RUNNING).delete()


def idempotency_records_purge(*, older_than: timedelta = timedelta(days=7)) -> int:
    """Delete finished Idempotency-Key records older than `older_than`; returns how many.

    For a periodic task (keys are meant for retries within minutes or hours, not
    forever). Running records are left to the stale-takeover rule.
    """
    cutoff = timezone.now() - older_than
    deleted, _ = IdempotencyRecord.objects.filter(
        status=IdempotencyStatus.DONE, created_at__lt=cutoff
    ).delete()
    return deleted
