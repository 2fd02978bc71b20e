"""Idempotency by key: a repeat of an operation has no effect and returns the first result.

An operation's key is derived from the client's idempotency key, or else from
its reference (`derived_key`); keys longer than the column are stored as a hash
(`fit_key`). The request under a key is identified by a fingerprint
(`fingerprint`): the same key with another request is an IdempotencyConflict.
`run_idempotent` locks the key before the change and inserts the key row in the
same transaction as the change.

The formats are written once, here, in Python and in SQL: bulk receive computes
the very same keys and fingerprints for a whole file in one statement
(`derived_key_sql`, `fit_key_sql`, `fingerprint_sql`), so a file and a single
receive under one reference never both apply.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError

from .. import errors
from ..locks import lock_idempotency_key
from ..models import AppliedOperation, InventoryTransaction
from .ledger import OperationResult, Reference
from .rows import in_transaction

# AppliedOperation.key's length (200): longer keys are stored as their hash.
MAX_KEY_LENGTH = AppliedOperation._meta.get_field("key").max_length


def fingerprint(payload: Any) -> str:
    """sha256 of the payload's JSON with sorted keys (Python's default separators)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def derived_key(
    operation: str, idempotency_key: str | None, reference: Reference | None, *parts: str
) -> str | None:
    """The client's key ("<operation>:key:<key>"), else the reference's
    ("<operation>:<type>:<id>:<parts...>"), else None (not idempotent)."""
    if idempotency_key:
        return fit_key(operation, f"{operation}:key:{idempotency_key}")
    if reference is not None:
        return fit_key(operation, ":".join([operation, reference.type, str(reference.id), *parts]))
    return None


def fit_key(operation: str, key: str) -> str:
    """Keys longer than the column (200) are stored as a hash; bulk receive does
    the same in SQL (`fit_key_sql`)."""
    if len(key) <= MAX_KEY_LENGTH:
        return key
    return f"{operation}:sha256:{hashlib.sha256(key.encode()).hexdigest()}"


# --- The same formats in SQL (PostgreSQL), for set-based callers -------------


def _sql_text(value: str) -> str:
    """A constant as an SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def derived_key_sql(operation: str, reference_type: str, reference_id: str, *parts: str) -> str:
    """SQL for the unfitted key `derived_key` makes from a reference: the
    arguments after `operation` are SQL expressions of text."""
    pieces = [_sql_text(operation), reference_type, reference_id, *parts]
    return " || ':' || ".join(pieces)


def fit_key_sql(operation: str, key: str) -> str:
    """SQL for `fit_key(operation, <key>)`, `key` an SQL expression of text."""
    return (
        f"CASE WHEN length({key}) <= {MAX_KEY_LENGTH} THEN {key} "
        f"ELSE {_sql_text(operation + ':sha256:')} "
        f"|| encode(sha256(convert_to({key}, 'UTF8')), 'hex') END"
    )


def fingerprint_sql(operation: str, fields: dict[str, str]) -> str:
    """SQL for `fingerprint({"operation": operation, **payload})` where the
    payload's values (text or whole numbers) are the SQL expressions `fields`."""
    items = sorted([("operation", None), *fields.items()])
    parts = []
    for n, (name, expression) in enumerate(items):
        lead = ("{" if n == 0 else ", ") + json.dumps(name) + ": "
        if expression is None:
            parts.append(_sql_text(lead + json.dumps(operation)))
        else:
            parts.extend([_sql_text(lead), f"to_json({expression})::text"])
    parts.append("'}'")
    return f"encode(sha256(convert_to({' || '.join(parts)}, 'UTF8')), 'hex')"


# --- Running an operation once per key ---------------------------------------


def replay(key: str, fingerprint: str) -> OperationResult | None:
    """The stored result for `key`, or None; a different request under it is a conflict."""
    applied = AppliedOperation.objects.filter(key=key).first()
    if applied is None:
        return None
    if applied.fingerprint != fingerprint:
        # No details: `key` is internal (operation, order, client pk); callers that
        # know the client's own key add it (api.views.with_idempotency_key).
        raise errors.IdempotencyConflict()
    ids = applied.result.get("transactions", [])
    ref = applied.result.get("reference")
    transactions = sorted(
        InventoryTransaction.objects.filter(id__in=ids), key=lambda t: ids.index(str(t.id))
    )
    return OperationResult(
        transactions=transactions,
        replayed=True,
        reference=Reference(**ref) if ref else None,
    )


def run_idempotent(
    key: str | None, operation: str, payload: dict, body: Callable[[], OperationResult]
) -> OperationResult:
    """Run `body` once per key: a repeat returns the first result without effect.

    The key comes first: in the operation's transaction, before `body` touches a
    row, the key is locked (`locks.lock_idempotency_key`) and a committed result
    under it is looked for. A concurrent duplicate therefore waits on the key, not
    on the stock rows its twin holds, and once the twin commits it replays the
    twin's result; waiting on the rows, it used to run its own body against the
    stock the twin left and could be refused (insufficient stock, an order
    already closed) although the twin had succeeded. If the twin rolled back, the
    duplicate runs. The key row is inserted in the same transaction as the
    change, so it exists exactly when the change is committed; its unique index
    has the last word against writers that take no key lock (bulk receive).
    """
    if key is None:
        return in_transaction(body)
    request = fingerprint({"operation": operation, **payload})

    def body_and_key() -> OperationResult:
        lock_idempotency_key(key)
        earlier = replay(key, request)
        if earlier is not None:
            return earlier
        result = body()
        AppliedOperation.objects.create(
            key=key,
            operation=operation,
            fingerprint=request,
            result={
                "transactions": [str(t.id) for t in result.transactions],
                "reference": (
                    {"type": result.reference.type, "id": result.reference.id}
                    if result.reference
                    else None
                ),
            },
        )
        return result

    try:
        return in_transaction(body_and_key)
    except IntegrityError:
        replayed = replay(key, request)
        if replayed is not None:
            return replayed
        raise
