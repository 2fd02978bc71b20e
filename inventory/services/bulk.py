"""Set-based stock work at the scale of millions of rows: bulk receive, reconcile, export.

The single-row operations in `stock.py` lock, change and ledger one order at a
time; this module does the same work for a whole file in a handful of SQL
statements, keeping the same guarantees:

* every balance change writes a ledger row in the same transaction, and the
  after-commit hook (`ledger.publish_committed_changes`) hears about it;
* inventory rows are created holding no locks, then locked in one statement in
  primary-key order (`ORDER BY id FOR NO KEY UPDATE`), the rule of `inventory.locks`;
* receipts are idempotent by reference + SKU + warehouse, with the very same
  `AppliedOperation` keys and fingerprints `stock_receive` uses, so a file and
  a single receive under the same reference never both apply.

PostgreSQL only (COPY, temp tables); `inventory/demo.py` has the embedded SQLite fallback
for demo data.

Longer than the other service modules (about 1,000 lines) on purpose: the three
operations share one machinery (CSV staging, the bulk session's settings, temp
tables, chunking, progress), and most of the length is their SQL.
"""

from __future__ import annotations

import csv
import re
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import IO, Protocol

from django.conf import settings
from django.db import DatabaseError, connection, connections, reset_queries, transaction
from django.utils import timezone

from .. import availability_cache, errors
from ..models import Inventory, ReferenceType, TransactionType, policy_allowance_sql
from . import checkpoints, idempotency, ledger
from .rows import create_rows_sql, stock_rows_create

# A time-ordered UUIDv7 computed in SQL (PostgreSQL 15 has no uuidv7()): the
# Unix time in milliseconds over the first 48 bits of a random v4 UUID, version
# bits set to 7. Ledger ids stay append-friendly for the primary-key index,
# like the uuid6.uuid7() ids the single operations write.
UUID7_SQL = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3) "
    "from 1 for 6), 52, 1), 53, 1), 'hex')::uuid"
)

# What a product's stock policy allows, over the product alias `p`
# (`models.policy_allowance`; the rule of the trigger that sets a new row's allowance).
_POLICY_ALLOWANCE = policy_allowance_sql("p")

REQUIRED_COLUMNS = ("sku", "warehouse", "quantity")
OPTIONAL_COLUMNS = ("reference",)
# Committed rows handed to the after-commit listeners at a time. Small enough that
# the availability read model's write-through (one Lua call per batch) finishes
# well inside the application's Redis socket timeout (0.2 s): at 10,000 rows a
# call timed out under load and the entries fell back to their TTL.
PUBLISH_BATCH = 2_000
# Rows read before the progress bar hears of them (a call per row costs ~3 % of reading).
PROGRESS_EVERY = 1_000
SAMPLE_ERRORS = 100
# Rows per transaction in --skip-invalid mode: locks on a chunk's rows are held
# for seconds, not for the whole file. Atomic mode is one transaction by definition.
APPLY_CHUNK = 50_000
# A bulk session waits longer for a busy row than a request does, and has no
# statement timeout (one statement may touch a million rows).
BULK_LOCK_TIMEOUT = "10s"
# Memory for a bulk statement's sorts and hashes (the backend's, not this process's):
# validation sorts the file for duplicates and the apply hash-joins its keys; at the
# default 4 MB a million-row sort or hash spills to temp files in many passes. Also
# what the events trigger (events_stock_emit, in the same transaction) sorts and
# groups the statement's ledger rows with.
BULK_WORK_MEM = "256MB"

_QUANTITY = re.compile(r"^\+?[0-9]{1,12}$")


class BulkFormatError(errors.InvalidInput):
    """The file as a whole cannot be read (no header, missing columns, not UTF-8)."""

    code = "bulk_format_error"


class Progress(Protocol):
    """What the bulk functions report progress to (a tqdm bar, log lines, nothing)."""

    def phase(self, name: str, total: int | None = None) -> None: ...

    def advance(self, n: int = 1) -> None: ...

    def close(self) -> None: ...


class NullProgress:
    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class BadRow:
    line: int
    sku: str
    warehouse: str
    quantity: str
    reference: str
    error: str
    message: str


@dataclass
class BulkReceiveResult:
    """What a bulk receive read, refused and applied.

    `applied` rows changed stock now; `already_applied` rows had been received
    before under the same reference (an idempotent re-run) and changed nothing.
    """

    rows: int = 0
    invalid: int = 0
    applied: int = 0
    already_applied: int = 0
    dry_run: bool = False
    atomic: bool = True
    bad_rows: list[BadRow] = field(default_factory=list)  # the first SAMPLE_ERRORS, by line

    @property
    def valid(self) -> int:
        return self.rows - self.invalid

    @property
    def ok(self) -> bool:
        return self.invalid == 0


# --------------------------------------------------------------------------
# Session helpers
# --------------------------------------------------------------------------


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        raise errors.InvalidInput("Bulk stock work needs PostgreSQL (COPY and temp tables).")


def _bulk_session_settings() -> None:
    """No statement timeout, a longer lock timeout, more work_mem. Inside the caller's transaction
    the settings are LOCAL (they end with it); otherwise `_reset_session_settings`
    restores the connection's own values, so a pooled connection never keeps them."""
    scope = "LOCAL " if connection.in_atomic_block else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SET {scope}statement_timeout = 0")
        cursor.execute(f"SET {scope}lock_timeout = '{BULK_LOCK_TIMEOUT}'")
        cursor.execute(f"SET {scope}work_mem = '{BULK_WORK_MEM}'")


def _reset_session_settings() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
            cursor.execute("RESET lock_timeout")
            cursor.execute("RESET work_mem")
    except DatabaseError:  # pragma: no cover - aborted outer transaction; rollback resets
        pass


def _drop_tables(*names: str) -> None:
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(f"DROP TABLE IF EXISTS {name}")


# --------------------------------------------------------------------------
# Reading the CSV (streamed; nothing but the current row is held in memory)
# --------------------------------------------------------------------------


def _parse_quantity(raw: str) -> tuple[int | None, str | None]:
    """A whole number from 1 to STOCKROOM_MAX_QUANTITY, or (None, message)."""
    limit = settings.STOCKROOM_MAX_QUANTITY
    text = raw.strip()
    if not text:
        return None, "quantity is empty"
    if text.startswith("-") and _QUANTITY.match(text[1:]):
        return None, f"quantity must be from 1 to {limit}, got {text}"
    if not _QUANTITY.match(text):
        return None, f"quantity is not a whole number: {text!r}"
    value = int(text)
    if not 1 <= value <= limit:
        return None, f"quantity must be from 1 to {limit}, got {value}"
    return value, None


def _read_header(reader: Iterator[list[str]], line_of) -> tuple[dict[str, int], int]:
    for record in reader:
        if not any(cell.strip() for cell in record):
            continue
        names = [cell.replace("\ufeff", "").strip().lower() for cell in record]
        line = line_of()
        missing = [name for name in REQUIRED_COLUMNS if name not in names]
        if missing:
            looks_like_data = not set(names) & {*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS}
            hint = (
                "the first line must be a header: sku,warehouse,quantity[,reference]"
                if looks_like_data
                else f"missing column(s): {', '.join(missing)}"
            )
            raise BulkFormatError(
                f"Line {line}: {hint} (found: {','.join(names)}).",
                details={"line": line, "missing": missing, "found": names},
            )
        duplicated = sorted({name for name in names if name and names.count(name) > 1})
        if duplicated:
            raise BulkFormatError(
                f"Line {line}: column(s) named twice: {', '.join(duplicated)}.",
                details={"line": line, "duplicated": duplicated},
            )
        return {name: names.index(name) for name in names if name}, len(names)
    raise BulkFormatError("The file is empty: expected a header sku,warehouse,quantity.")


def _rows_for_staging(text: Iterable[str], *, batch_reference: str | None) -> Iterator[tuple]:
    """Yield one staging tuple per data row: line, sku, warehouse, quantity text,
    quantity, reference, error code, message (errors for rows that cannot be used)."""
    reader = csv.reader(text, skipinitialspace=True)
    state = {"last": 0}

    def line_of() -> int:
        return reader.line_num

    try:
        columns, width = _read_header(reader, line_of)
        state["last"] = reader.line_num
        i_sku, i_wh, i_qty = (columns[name] for name in REQUIRED_COLUMNS)
        i_ref = columns.get("reference")
        for record in reader:
            line = state["last"] + 1  # where the record starts (quoted fields may span lines)
            state["last"] = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            cells = [_clean(cell) for cell in record]
            if len(cells) > width and any(cells[width:]):
                yield _bad(line, cells, columns, batch_reference, "too_many_columns",
                           f"expected {width} columns, got {len(cells)}")  # fmt: skip
                continue
            if len(cells) < width:
                yield _bad(line, cells, columns, batch_reference, "missing_columns",
                           f"expected {width} columns, got {len(cells)}")  # fmt: skip
                continue
            sku, code, qty_text = cells[i_sku], cells[i_wh], cells[i_qty]
            reference = (cells[i_ref] if i_ref is not None else "") or (batch_reference or "")
            if i_ref is not None and not cells[i_ref] and reference:
                cells[i_ref] = reference
            if not sku:
                yield _bad(line, cells, columns, batch_reference, "missing_sku", "SKU is empty")
                continue
            if not code:
                yield _bad(
                    line, cells, columns, batch_reference, "missing_warehouse", "warehouse is empty"
                )
                continue
            quantity, problem = _parse_quantity(qty_text)
            if problem:
                yield _bad(line, cells, columns, batch_reference, "bad_quantity", problem)
                continue
            if not reference:
                yield _bad(line, cells, columns, batch_reference, "missing_reference",
                           "no reference: give --reference or a reference column")  # fmt: skip
                continue
            if len(reference) > 100:
                yield _bad(line, cells, columns, batch_reference, "bad_reference",
                           "reference is longer than 100 characters")  # fmt: skip
                continue
            yield (line, sku, code, qty_text, quantity, reference, None, None)
    except UnicodeDecodeError as exc:
        raise BulkFormatError(
            f"The file is not UTF-8 text (after line {state['last']}).",
            details={"line": state["last"] + 1},
        ) from exc
    except csv.Error as exc:
        raise BulkFormatError(
            f"Line {state['last'] + 1}: unreadable CSV: {exc}.", details={"line": state["last"] + 1}
        ) from exc


def _clean(cell: str) -> str:
    """Strip whitespace, and quotes the csv module left because a space came before them.

    A NUL character (which PostgreSQL text cannot hold) becomes U+FFFD, so the row
    is reported (as an unknown SKU or warehouse) instead of failing the COPY."""
    if "\x00" in cell:
        cell = cell.replace("\x00", "\ufffd")
    cell = cell.strip()
    if len(cell) >= 2 and cell[0] == cell[-1] == '"':
        cell = cell[1:-1].replace('""', '"').strip()
    return cell


def _bad(
    line: int,
    cells: list[str],
    columns: dict[str, int],
    batch_reference: str | None,
    code: str,
    message: str,
) -> tuple:
    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index] if index is not None and index < len(cells) else ""

    reference = cell("reference") or batch_reference or ""
    return (line, cell("sku"), cell("warehouse"), cell("quantity"), None, reference,
            code, message)  # fmt: skip


# --------------------------------------------------------------------------
# Bulk receive
# --------------------------------------------------------------------------


# The idempotency key and fingerprint are exactly those of
# stock_receive(reference=...), from the formats' one source (`idempotency`):
# "receive:<type>:<id>:<sku>:<warehouse>" (hashed beyond 200 characters) and the
# fingerprint of {"operation", "quantity", "sku", "warehouse"}.
_RECEIVE_FULL_KEY = idempotency.derived_key_sql(
    "receive", "%(ref_type)s", "r.reference_id", "r.sku", "r.warehouse"
)
_RECEIVE_KEY = idempotency.fit_key_sql("receive", "k.full_key")
_RECEIVE_FINGERPRINT = idempotency.fingerprint_sql(
    "receive", {"quantity": "r.quantity", "sku": "r.sku", "warehouse": "r.warehouse"}
)


def _resolve_sql(raw: str, res: str) -> str:
    # One sort, in the inner query: by stock row (product, warehouse) and line, for
    # both windows (a row's first line, the apply's order) and for the stored order;
    # the outer query only adds columns, so the order holds (no second sort of
    # the wide rows, which at a million rows spilled to disk).
    return f"""
    CREATE TEMP TABLE {res} AS
    -- Read once (a materialized CTE: the volatile calls are not repeated per row).
    WITH g AS MATERIALIZED (
      SELECT stockroom_uuid7_prefix() AS prefix,
             floor(random() * 4611686018427387903)::bigint AS base
    )
    SELECT s.line, s.sku, s.warehouse, s.quantity_text, s.quantity, s.reference_id,
           s.error0, s.message0, s.first_line, s.product_id, s.is_bundle, s.allowance,
           s.warehouse_id, s.warehouse_active, s.inventory_id, s.op_key, s.fingerprint,
           CASE
             WHEN s.error0 IS NOT NULL THEN s.error0
             WHEN s.product_id IS NULL THEN 'unknown_sku'
             WHEN s.is_bundle THEN 'sku_is_bundle'
             WHEN s.warehouse_id IS NULL THEN 'unknown_warehouse'
             WHEN NOT s.warehouse_active THEN 'warehouse_inactive'
             WHEN s.first_line <> s.line THEN 'duplicate'
             WHEN s.applied_key IS NOT NULL AND s.applied_fingerprint <> s.fingerprint
               THEN 'idempotency_conflict'
           END AS error,
           CASE
             WHEN s.error0 IS NOT NULL THEN s.message0
             WHEN s.product_id IS NULL THEN format('unknown SKU %%s', s.sku)
             WHEN s.is_bundle THEN
               format('%%s is a bundle: it has no stock of its own (receive its components)',
                      s.sku)
             WHEN s.warehouse_id IS NULL THEN format('unknown warehouse %%s', s.warehouse)
             WHEN NOT s.warehouse_active THEN format('warehouse %%s is inactive', s.warehouse)
             WHEN s.first_line <> s.line THEN
               format('duplicate of line %%s (same SKU and warehouse)', s.first_line)
             WHEN s.applied_key IS NOT NULL AND s.applied_fingerprint <> s.fingerprint THEN
               format('reference %%s already received a different quantity of %%s in %%s',
                      s.reference_id, s.sku, s.warehouse)
           END AS message,
           (s.error0 IS NULL AND s.product_id IS NOT NULL AND NOT s.is_bundle
            AND s.warehouse_id IS NOT NULL
            AND s.warehouse_active AND s.first_line = s.line
            AND s.applied_key IS NOT NULL
            AND s.applied_fingerprint = s.fingerprint) AS already_applied,
           -- The ledger ids: one clock reading and one random base for the file,
           -- numbered in the order the apply writes the rows (stockroom_uuid7_at,
           -- inlined): time-ordered like stockroom_uuid7(), without a clock read and
           -- a random UUID per row, and ascending as they are inserted.
           stockroom_uuid7_at((SELECT g.prefix FROM g), (SELECT g.base FROM g), s.apply_order)
             AS ledger_id
    FROM (
      SELECT r.line, r.sku, r.warehouse, r.quantity_text, r.quantity, r.reference_id,
             r.error AS error0, r.message AS message0,
             -- A (product, warehouse) pair is a (SKU, warehouse code) pair: the
             -- lowest good line of each is the one applied, the others are duplicates.
             min(r.line) FILTER (WHERE r.error IS NULL)
               OVER (PARTITION BY p.id, w.id ORDER BY r.line) AS first_line,
             row_number() OVER (ORDER BY p.id, w.id, r.line) AS apply_order,
             p.id AS product_id, coalesce(p.is_bundle, false) AS is_bundle,
             {_POLICY_ALLOWANCE} AS allowance,
             w.id AS warehouse_id, w.is_active AS warehouse_active,
             i.id AS inventory_id,
             key.op_key, {_RECEIVE_FINGERPRINT} AS fingerprint,
             a.key AS applied_key, a.fingerprint AS applied_fingerprint
      FROM {raw} r
      LEFT JOIN inventory_product p ON r.error IS NULL AND p.sku = r.sku
      LEFT JOIN warehouses_warehouse w ON r.error IS NULL AND w.code = r.warehouse
      -- The row's id when it exists already: most receipts top up existing rows, and
      -- then creating rows is skipped and the apply joins by primary key.
      LEFT JOIN inventory_inventory i ON i.product_id = p.id AND i.warehouse_id = w.id
      CROSS JOIN LATERAL (
        SELECT {_RECEIVE_FULL_KEY} AS full_key
      ) k
      CROSS JOIN LATERAL (
        SELECT {_RECEIVE_KEY} AS op_key
      ) key
      LEFT JOIN inventory_appliedoperation a ON r.error IS NULL AND a.key = key.op_key
    ) s
    -- Stored in stock-row order (product, warehouse): the apply reads the table in
    -- this order, so its index entries land in key order (see _apply_chunk).
    ORDER BY s.product_id, s.warehouse_id, s.line
    """


def stock_receive_bulk(
    *,
    source: Iterable[str],
    actor: str,
    reference: str | None = None,
    reference_type: str = ReferenceType.IMPORT,
    reason: str = "bulk receive",
    atomic: bool = True,
    dry_run: bool = False,
    report: IO[str] | None = None,
    progress: Progress | None = None,
) -> BulkReceiveResult:
    """RECEIVE many rows from a CSV (`sku,warehouse,quantity[,reference]`), set-based.

    `source` is text (an open file, stdin, lines); it is read once, streamed
    into a temp staging table with COPY, so memory stays flat whatever its
    size. Every row is validated (format in Python; SKU, warehouse, duplicates
    and earlier receipts in SQL). Bad rows go to `report` (CSV: line, sku,
    warehouse, quantity, reference, error, message) and into the result.

    * atomic (default): any bad row and nothing is applied.
    * atomic=False (--skip-invalid): good rows are applied, in transactions of
      APPLY_CHUNK rows, bad ones reported.
    * dry_run: validate and report only.

    Each row needs a reference (its `reference` cell, else `reference`): the
    idempotency key is reference + SKU + warehouse, shared with `stock_receive`,
    so a re-run of the same file applies nothing twice (rows count as
    `already_applied`) and the same key with another quantity is a bad row
    (`idempotency_conflict`).
    Locks: creates missing inventory rows holding no locks, then locks each
    transaction's rows in one statement in primary-key order.
    Raises BulkFormatError (nothing applied) when the file cannot be read at all.
    """
    _require_postgresql()
    if reference_type not in ReferenceType.values:
        raise errors.InvalidInput(f"Unknown reference type {reference_type!r}.")
    if reference is not None and not 1 <= len(reference.strip()) <= 100:
        raise errors.InvalidInput("A reference of 1 to 100 characters is required.")
    reference = reference.strip() if reference else None
    progress = progress or NullProgress()
    result = BulkReceiveResult(dry_run=dry_run, atomic=atomic)
    suffix = uuid.uuid4().hex[:12]
    raw, res, applied = f"bulk_raw_{suffix}", f"bulk_res_{suffix}", f"bulk_applied_{suffix}"
    outer = connection.in_atomic_block
    try:
        _bulk_session_settings()
        # A savepoint when the caller has a transaction: a refused file (or a
        # failed COPY) rolls back to here instead of aborting the caller's work.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"CREATE TEMP TABLE {raw} (line integer, sku text, warehouse text, "
                "quantity_text text, quantity integer, reference_id text, error text, "
                "message text)"
            )
            cursor.execute(
                f"CREATE TEMP TABLE {applied} (line integer PRIMARY KEY, inventory_id uuid, "
                "product_id uuid, warehouse_id uuid, on_hand bigint, reserved bigint, "
                "version bigint, unsellable bigint, sku text, warehouse_code text)"
            )
            progress.phase("reading rows")
            with cursor.copy(
                f"COPY {raw} (line, sku, warehouse, quantity_text, quantity, reference_id, "
                "error, message) FROM STDIN"
            ) as copy:
                for row in _rows_for_staging(source, batch_reference=reference):
                    copy.write_row(row)
                    result.rows += 1
                    if result.rows % PROGRESS_EVERY == 0:
                        progress.advance(PROGRESS_EVERY)
            if result.rows % PROGRESS_EVERY:
                progress.advance(result.rows % PROGRESS_EVERY)
            progress.phase("validating")
            cursor.execute(_resolve_sql(raw, res), {"ref_type": reference_type})
            cursor.execute(f"DROP TABLE {raw}")
            cursor.execute(f"CREATE INDEX ON {res} (line)")
            cursor.execute(f"ANALYZE {res}")
            cursor.execute(
                f"SELECT count(*) FILTER (WHERE error IS NOT NULL), "
                f"count(*) FILTER (WHERE already_applied), min(line), max(line) FROM {res}"
            )
            result.invalid, result.already_applied, first, last = cursor.fetchone()
            result.bad_rows = _bad_rows_sample(cursor, res)
        if report is not None:
            _write_report(report, res)
        if dry_run or (atomic and result.invalid) or first is None:
            return result
        progress.phase("applying", total=result.valid - result.already_applied)
        # Atomic: one transaction for every row. --skip-invalid: one per chunk, so
        # each chunk's row locks are held for seconds, not for the whole file.
        chunks = [(first, last)] if atomic else _chunks(first, last, APPLY_CHUNK)
        for lo, hi in chunks:
            # New rows first, in their own transaction, holding no row locks
            # (the foundation's rule); an empty row changes no balance.
            _create_missing_rows(res, lo, hi)
            with transaction.atomic():
                done = _apply_chunk(
                    res, applied, lo, hi,
                    actor=actor, reference_type=reference_type, reason=reason,
                )  # fmt: skip
                transaction.on_commit(partial(_publish_applied, applied, lo, hi))
            result.applied += done
            progress.advance(done)
        # Rows another run committed between our validation and our key insert.
        result.already_applied += result.valid - result.already_applied - result.applied
        return result
    finally:
        progress.close()
        if outer:
            transaction.on_commit(partial(_drop_tables, raw, res, applied))
        else:
            _drop_tables(raw, res, applied)
            _reset_session_settings()


def _chunks(first: int, last: int, size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + size - 1, last)) for lo in range(first, last + 1, size)]


_TODO = "s.error IS NULL AND NOT s.already_applied AND s.line BETWEEN %(lo)s AND %(hi)s"


def _create_missing_rows(res: str, lo: int, hi: int) -> None:
    """Empty inventory rows for new (product, warehouse) pairs, committed holding no
    row locks, through the one row-creating function (`rows.create_rows_sql`): the
    products are locked FOR SHARE and each row's allowance comes from its product
    at that moment (not from the policy read at validation, minutes earlier).

    Only the pairs that had no row at validation (`inventory_id` NULL) are looked at;
    when every row exists (a top-up receipt) this is one indexed probe. The created
    rows' ids (or those of rows created meanwhile by someone else) are written back
    to the staging table, so the apply joins every row by primary key."""
    params = {"lo": lo, "hi": hi}
    missing = f"{_TODO} AND s.inventory_id IS NULL"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {res} s WHERE {missing})", params)
        if not cursor.fetchone()[0]:
            return
    create_rows_sql(f"SELECT s.product_id, s.warehouse_id FROM {res} s WHERE {missing}", params)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {res} s SET inventory_id = i.id
            FROM inventory_inventory i
            WHERE {missing} AND i.product_id = s.product_id AND i.warehouse_id = s.warehouse_id
            """,
            params,
        )


def _apply_chunk(
    res: str, applied: str, lo: int, hi: int, *, actor: str, reference_type: str, reason: str
) -> int:
    """Lock the chunk's rows in pk order, then key, update and ledger them in one statement.

    Every write goes in the order of the index it feeds most, so a million rows touch
    each index page about once instead of at random (at random, most inserts missed
    the buffer cache and evicted a dirty page: issue #18, docs/PERFORMANCE.md
    "Bulk receive per phase (goal 5)"): the keys sorted by key; the stock rows in
    (product, warehouse) order, the staging table's stored order (its scan drives
    the update; the keys are only probed), which is the order of the unique
    (product, warehouse) index and, within a warehouse, of inventory_warehouse_product
    and inventory_count_due;
    the ledger rows follow the update, which is the order of ledger_product_time
    and, by the numbering at validation, of their ids."""
    now = timezone.now()
    params = {
        "lo": lo, "hi": hi, "now": now, "actor": actor, "ref_type": reference_type,
        "reason": reason, "receive": TransactionType.RECEIVE,
    }  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT count(*) FROM (
                SELECT i.id FROM inventory_inventory i
                JOIN {res} s ON i.id = s.inventory_id
                WHERE {_TODO}
                ORDER BY i.id
                FOR NO KEY UPDATE OF i
            ) locked
            """,
            params,
        )
        cursor.execute(
            f"""
            WITH keys AS (
                INSERT INTO inventory_appliedoperation (key, operation, fingerprint, result,
                                                        created_at)
                SELECT s.op_key, 'receive', s.fingerprint,
                       jsonb_build_object(
                         'transactions', jsonb_build_array(s.ledger_id::text),
                         'reference', jsonb_build_object('type', %(ref_type)s,
                                                         'id', s.reference_id)),
                       %(now)s
                FROM {res} s WHERE {_TODO}
                ORDER BY s.op_key
                ON CONFLICT (key) DO NOTHING
                RETURNING key
            ), upd AS (
                UPDATE inventory_inventory i
                SET on_hand = i.on_hand + s.quantity, version = i.version + 1,
                    updated_at = %(now)s
                FROM {res} s
                WHERE i.id = s.inventory_id AND {_TODO}
                  AND s.op_key IN (SELECT k.key FROM keys k)
                RETURNING i.id, i.product_id, i.warehouse_id, i.on_hand, i.reserved, i.version,
                          s.line, s.quantity, s.reference_id, s.ledger_id, s.sku, s.warehouse,
                          i.safety_stock + i.damaged + i.quality_control AS unsellable
            ), ledger AS (
                INSERT INTO inventory_inventorytransaction (id, type, on_hand_delta,
                    reserved_delta, on_hand_after, reserved_after, reference_type, reference_id,
                    reason, created_at, created_by, request_id, warehouse_id, product_id)
                SELECT u.ledger_id, %(receive)s, u.quantity, 0, u.on_hand, u.reserved,
                       %(ref_type)s, u.reference_id, %(reason)s, %(now)s, %(actor)s, '',
                       u.warehouse_id, u.product_id
                FROM upd u
            )
            INSERT INTO {applied} (line, inventory_id, product_id, warehouse_id, on_hand,
                                   reserved, version, unsellable, sku, warehouse_code)
            SELECT line, id, product_id, warehouse_id, on_hand, reserved, version, unsellable,
                   sku, warehouse
            FROM upd
            -- By line (sorted in memory): its primary key and the publishing's reads
            -- by line then go in page order, not at random.
            ORDER BY line
            """,
            params,
        )
        return cursor.rowcount


def _publish_applied(applied: str, lo: int, hi: int) -> None:
    """After commit: hand the committed rows to the listeners, PUBLISH_BATCH at a time.

    Reads back from the session's temp table by keyset, so a million rows never
    sit in memory at once. With no listener registered it costs nothing.

    The listeners run on one worker thread, one batch at a time, while this
    thread reads and builds the next batch: their work is mostly waiting on the
    read model's Redis write-through, which then overlaps the read-back (at most
    two batches in memory; every batch is handed over once, in order, and all of
    them before this returns).
    """
    if not ledger.COMMITTED_CHANGE_LISTENERS:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bulk-publish") as worker:
        try:
            pending = None
            for changes in _applied_batches(applied, lo, hi):
                if pending is not None:
                    pending.result()
                pending = worker.submit(_publish_batch, changes)
            if pending is not None:
                pending.result()
        finally:
            # A listener that used the database did so on the worker's own connection.
            worker.submit(connections.close_all).result()


def _publish_batch(changes: tuple[ledger.CommittedChange, ...]) -> None:
    ledger.publish_committed_changes(changes)
    if settings.DEBUG:
        # With DEBUG on (manage.py's default) Django keeps the SQL of its last
        # 9,000 queries per connection; a listener's queries name a batch's rows,
        # so a million-row file would keep hundreds of MB of SQL text alive.
        reset_queries()


def _applied_batches(
    applied: str, lo: int, hi: int
) -> Iterator[tuple[ledger.CommittedChange, ...]]:
    last = lo - 1
    while True:
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT line, inventory_id, product_id, warehouse_id, on_hand, reserved, version, "
                f"unsellable, sku, warehouse_code FROM {applied} "
                f"WHERE line > %s AND line <= %s ORDER BY line LIMIT %s",
                [last, hi, PUBLISH_BATCH],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        last = rows[-1][0]
        if settings.DEBUG:
            reset_queries()
        yield tuple(
            ledger.CommittedChange(
                inventory_id=row[1],
                product_id=row[2],
                warehouse_id=row[3],
                type=TransactionType.RECEIVE,
                on_hand=row[4],
                reserved=row[5],
                version=row[6],
                unsellable=row[7],
                sku=row[8],
                warehouse_code=row[9],
            )
            for row in rows
        )


def _bad_rows_sample(cursor, res: str) -> list[BadRow]:
    cursor.execute(
        f"SELECT line, coalesce(sku, ''), coalesce(warehouse, ''), coalesce(quantity_text, ''), "
        f"coalesce(reference_id, ''), error, message FROM {res} WHERE error IS NOT NULL "
        f"ORDER BY line LIMIT {SAMPLE_ERRORS}"
    )
    return [BadRow(*row) for row in cursor.fetchall()]


REPORT_COLUMNS = ("line", "sku", "warehouse", "quantity", "reference", "error", "message")


def _write_report(report: IO[str], res: str) -> None:
    """Stream every bad row, by line, as CSV (COPY TO STDOUT: flat memory)."""
    report.write(",".join(REPORT_COLUMNS) + "\n")
    with (
        connection.cursor() as cursor,
        cursor.copy(
            f"COPY (SELECT line, sku, warehouse, quantity_text, reference_id, error, message "
            f"FROM {res} WHERE error IS NOT NULL ORDER BY line) TO STDOUT (FORMAT csv)"
        ) as copy,
    ):
        for data in copy:
            report.write(bytes(data).decode())


# --------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "sku", "warehouse", "quantity", "reserved", "available",
    "reorder_threshold", "reorder_quantity", "version",
    "safety_stock", "damaged", "quality_control",
)  # fmt: skip


def inventory_export_csv(
    *,
    out: IO[bytes],
    warehouse: str | None = None,
    skip_zero: bool = False,
    using: str = "default",
) -> int:
    """Write inventory as CSV to a binary stream; returns the number of rows.

    Columns: sku, warehouse, quantity (= on hand), reserved, available (sellable:
    on hand - reserved - safety stock - damaged - quality control, below 0 only
    by a backorder), reorder_threshold, reorder_quantity, version, and the stock
    states safety_stock, damaged, quality_control (issue #15), ordered by SKU
    then warehouse.
    The first three columns are stock_receive_bulk's input format, so an export (with
    skip_zero, since quantities must be ≥ 1) loads into another database as is,
    and serves as a cycle-count sheet. Streamed with COPY: flat memory. A read,
    from one consistent snapshot, on the database alias `using` (the edges pass
    the streaming replica's when it is fresh enough: inventory_site/db_router.py).
    """
    _require_postgresql()
    conditions = ["true"]
    if warehouse is not None:
        from warehouses.models import Warehouse

        site = Warehouse.objects.using(using).filter(code=warehouse).first()
        if site is None:
            raise errors.UnknownWarehouse([warehouse])
        conditions.append(f"i.warehouse_id = '{uuid.UUID(str(site.pk))}'::uuid")
    if skip_zero:
        conditions.append("i.on_hand > 0")
    query = f"""
        SELECT p.sku, w.code, i.on_hand, i.reserved, i.available,
               i.reorder_threshold, i.reorder_quantity, i.version,
               i.safety_stock, i.damaged, i.quality_control
        FROM inventory_inventory i
        JOIN inventory_product p ON p.id = i.product_id
        JOIN warehouses_warehouse w ON w.id = i.warehouse_id
        WHERE {" AND ".join(conditions)}
        ORDER BY p.sku, w.code
    """
    rows = 0
    out.write((",".join(EXPORT_COLUMNS) + "\n").encode())
    db = connections[using]
    own_transaction = not db.in_atomic_block
    with transaction.atomic(using=using), db.cursor() as cursor:
        if own_transaction:  # one snapshot for the whole file
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SET LOCAL statement_timeout = 0")
        with cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv)") as copy:
            for data in copy:
                chunk = bytes(data)
                rows += chunk.count(b"\n")
                out.write(chunk)
    return rows


# --------------------------------------------------------------------------
# Reconcile: balances against the ledger and the open reservation lines
# --------------------------------------------------------------------------

RECONCILE_ACTOR = "system:reconcile"
RECONCILE_BATCH = 1_000


@dataclass
class Discrepancy:
    """One inventory row whose balances do not match what explains them.

    `ledger_on_hand` / `ledger_reserved` are the sums of the row's ledger deltas;
    `open_reserved` is what its active reservation lines still hold.
    `inventory_id` is None for ledger rows whose inventory row does not exist.
    """

    inventory_id: uuid.UUID | None
    sku: str
    warehouse: str
    on_hand: int
    reserved: int
    ledger_on_hand: int
    ledger_reserved: int
    open_reserved: int
    allowance: int = 0  # the row's backorder allowance
    policy_allowance: int = 0  # what its product's stock policy allows now
    fixed: bool = False
    note: str = ""
    # Stock states (issue #15): the row's damaged / quality-control balances and
    # the sums of their ledger deltas.
    damaged: int = 0
    quality_control: int = 0
    ledger_damaged: int = 0
    ledger_quality_control: int = 0

    @property
    def problems(self) -> list[str]:
        found = []
        if self.inventory_id is None:
            found.append("no inventory row")
        if self.on_hand != self.ledger_on_hand:
            found.append(f"on hand {self.on_hand} but ledger sums to {self.ledger_on_hand}")
        if self.reserved != self.ledger_reserved:
            found.append(f"reserved {self.reserved} but ledger sums to {self.ledger_reserved}")
        if self.reserved != self.open_reserved:
            found.append(f"reserved {self.reserved} but open order lines hold {self.open_reserved}")
        if self.damaged != self.ledger_damaged:
            found.append(f"damaged {self.damaged} but ledger sums to {self.ledger_damaged}")
        if self.quality_control != self.ledger_quality_control:
            found.append(
                f"quality control {self.quality_control} but ledger sums to "
                f"{self.ledger_quality_control}"
            )
        if self.allowance != self.policy_allowance:
            found.append(
                f"backorder allowance {self.allowance} but the product's stock policy "
                f"allows {self.policy_allowance}"
            )
        return found


@dataclass
class ReconcileResult:
    rows_checked: int = 0
    discrepancies: list[Discrepancy] = field(default_factory=list)
    truncated: bool = False  # more were found than `limit`
    fixed: int = 0
    unfixable: int = 0
    # The balance checkpoint the ledger was read from (None: all of the ledger).
    checkpoint: object | None = None

    @property
    def clean(self) -> bool:
        return not self.discrepancies


_OPEN_LINES = """
    SELECT inventory_id, sum(quantity - quantity_fulfilled - quantity_released) AS open
    FROM inventory_reservationline WHERE status = 'active' GROUP BY inventory_id
"""


def inventory_reconcile(
    *, fix: bool = False, limit: int = 100_000, reason: str = "", progress: Progress | None = None
) -> ReconcileResult:
    """Recompute every row's balances from the ledger and the open reservation lines.

    One pass of SQL aggregates (ledger sums per product and warehouse, open
    quantity per row), compared with every inventory row; at most `limit`
    discrepancies are returned (`truncated` says there were more).

    With `fix`, each discrepancy is repaired under the row's lock, after
    recomputing it there (so concurrent orders between the scan and the fix are
    taken into account), by appending one ADJUST ledger row (reference
    manual/reconcile-<time>, actor system:reconcile) with a reason that names
    both sides:

    * on hand: the balance is what every reservation was checked against, so it
      is kept, and the ADJUST row makes the ledger explain it (an unexplained
      difference is then visible in the ledger forever; a cycle count settles
      the physical truth).
    * reserved: the open reservation lines are what orders hold and what
      release/fulfil act on, so reserved is set to their sum, and the ADJUST
      row's reserved delta brings the ledger to the same figure. If on hand
      cannot cover the open lines (it would oversell), the row is left as is
      and reported as unfixable: release or re-route those orders first.
    * a ledger with no inventory row gets an empty row (created holding no
      locks, by `rows.stock_rows_create`), then is fixed like any other.
    * backorder allowance: a row's allowance must be what its product's stock
      policy allows now (the no-oversell CHECK trusts it). It is set to that,
      under the product's lock (FOR SHARE, so no policy change runs meanwhile),
      and recorded in `AllowanceCorrection` (who, why, old and new; the ledger
      holds balance changes only). If open orders already hold more than the
      policy allows (an oversell the stale allowance let through) the row is
      left as is and reported as unfixable.

    Balance changes are published to the after-commit listeners as ADJUST.
    """
    _require_postgresql()
    progress = progress or NullProgress()
    checkpoint = checkpoints.latest_checkpoint()
    result = ReconcileResult(checkpoint=checkpoint)
    outer = connection.in_atomic_block
    try:
        _bulk_session_settings()
        progress.phase("checking")
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM inventory_inventory")
            result.rows_checked = cursor.fetchone()[0]
            ledger_sums, params = checkpoints.ledger_sums_sql(checkpoint)
            cursor.execute(
                f"""
                SELECT i.id, p.sku, w.code, coalesce(i.on_hand, 0), coalesce(i.reserved, 0),
                       coalesce(l.on_hand, 0), coalesce(l.reserved, 0), coalesce(o.open, 0),
                       coalesce(i.backorder_allowance, {_POLICY_ALLOWANCE}), {_POLICY_ALLOWANCE},
                       coalesce(i.damaged, 0), coalesce(i.quality_control, 0),
                       coalesce(l.damaged, 0), coalesce(l.quality_control, 0)
                FROM inventory_inventory i
                FULL JOIN ({ledger_sums}) l
                  ON l.product_id = i.product_id AND l.warehouse_id = i.warehouse_id
                LEFT JOIN ({_OPEN_LINES}) o ON o.inventory_id = i.id
                JOIN inventory_product p ON p.id = coalesce(i.product_id, l.product_id)
                JOIN warehouses_warehouse w ON w.id = coalesce(i.warehouse_id, l.warehouse_id)
                WHERE coalesce(i.on_hand, 0) <> coalesce(l.on_hand, 0)
                   OR coalesce(i.reserved, 0) <> coalesce(l.reserved, 0)
                   OR coalesce(i.reserved, 0) <> coalesce(o.open, 0)
                   OR i.backorder_allowance <> {_POLICY_ALLOWANCE}
                   OR coalesce(i.damaged, 0) <> coalesce(l.damaged, 0)
                   OR coalesce(i.quality_control, 0) <> coalesce(l.quality_control, 0)
                ORDER BY p.sku, w.code
                LIMIT %(limit)s
                """,
                {**params, "limit": limit + 1},
            )
            found = [
                Discrepancy(
                    *row[:10],
                    damaged=row[10],
                    quality_control=row[11],
                    ledger_damaged=row[12],
                    ledger_quality_control=row[13],
                )
                for row in cursor.fetchall()
            ]
        result.truncated = len(found) > limit
        result.discrepancies = found[:limit]
        progress.advance(result.rows_checked)
        if fix and result.discrepancies:
            _reconcile_fix(result, reason=reason, progress=progress)
        return result
    finally:
        progress.close()
        if not outer:
            _reset_session_settings()


def _known_pairs(pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (sku, code) pairs whose product and warehouse both still exist."""
    from warehouses.models import Warehouse

    from ..models import Product

    skus = set(Product.objects.filter(sku__in={s for s, _ in pairs}).values_list("sku", flat=True))
    codes = set(
        Warehouse.objects.filter(code__in={c for _, c in pairs}).values_list("code", flat=True)
    )
    return {(sku, code) for sku, code in pairs if sku in skus and code in codes}


def _create_orphan_rows(orphans: list[Discrepancy]) -> None:
    """Ledger rows without a stock row: create the rows (born through the one
    row-creating function, allowance from the product) and note their ids."""
    known = _known_pairs({(d.sku, d.warehouse) for d in orphans})
    stock_rows_create(known)  # unknown ones are reported as unfixable later
    ids = {
        (sku, code): pk
        for pk, sku, code in Inventory.objects.filter(
            product__sku__in={sku for sku, _ in known},
            warehouse__code__in={code for _, code in known},
        ).values_list("pk", "product__sku", "warehouse__code")
    }
    for d in orphans:
        d.inventory_id = ids.get((d.sku, d.warehouse))


def _reconcile_fix(result: ReconcileResult, *, reason: str, progress: Progress) -> None:
    from ..models import AllowanceCorrection, InventoryTransaction

    orphans = [d for d in result.discrepancies if d.inventory_id is None]
    if orphans:
        _create_orphan_rows(orphans)
    by_id = {d.inventory_id: d for d in result.discrepancies if d.inventory_id is not None}
    run = timezone.now()
    reference_id = f"reconcile-{run:%Y%m%dT%H%M%SZ}"
    progress.phase("fixing", total=len(by_id))
    ids = sorted(by_id)
    for start in range(0, len(ids), RECONCILE_BATCH):
        batch = ids[start : start + RECONCILE_BATCH]
        with transaction.atomic(), connection.cursor() as cursor:
            # The products first, FOR SHARE in pk order (a policy change waits;
            # the order of inventory.locks), then the rows in primary-key order;
            # then recompute under the locks.
            cursor.execute(
                """
                SELECT count(*) FROM (
                    SELECT p.id FROM inventory_product p
                    WHERE p.id IN (SELECT product_id FROM inventory_inventory WHERE id = ANY(%s))
                    ORDER BY p.id FOR SHARE OF p
                ) locked
                """,
                [batch],
            )
            # Lock the rows first, so the sums below (a later statement, a later
            # snapshot) see every change committed before the locks were granted.
            cursor.execute(
                """
                SELECT count(*) FROM (
                    SELECT id FROM inventory_inventory WHERE id = ANY(%s)
                    ORDER BY id FOR NO KEY UPDATE
                ) locked
                """,
                [batch],
            )
            cursor.execute(
                f"""
                WITH l AS (
                    SELECT product_id, warehouse_id, sum(on_hand) AS on_hand,
                           sum(reserved) AS reserved, sum(damaged) AS damaged,
                           sum(quality_control) AS quality_control
                    FROM (
                        SELECT c.product_id, c.warehouse_id, c.on_hand, c.reserved, c.damaged,
                               c.quality_control
                        FROM inventory_balancecheckpoint c JOIN inventory_inventory i
                          ON i.product_id = c.product_id AND i.warehouse_id = c.warehouse_id
                        WHERE c.checkpoint_id = %(cp_id)s AND i.id = ANY(%(batch)s)
                        UNION ALL
                        SELECT t.product_id, t.warehouse_id, t.on_hand_delta, t.reserved_delta,
                               t.damaged_delta, t.quality_control_delta
                        FROM inventory_inventorytransaction t JOIN inventory_inventory i
                          ON i.product_id = t.product_id AND i.warehouse_id = t.warehouse_id
                        WHERE (%(cp_position)s::timestamptz IS NULL
                               OR t.created_at >= %(cp_position)s)
                          AND i.id = ANY(%(batch)s)
                    ) parts
                    GROUP BY product_id, warehouse_id
                )
                SELECT i.id, i.product_id, i.warehouse_id, i.on_hand, i.reserved,
                       i.backorder_allowance, i.version, {_POLICY_ALLOWANCE}, p.stock_policy,
                       coalesce(l.on_hand, 0), coalesce(l.reserved, 0),
                       coalesce((SELECT sum(r.quantity - r.quantity_fulfilled - r.quantity_released)
                                 FROM inventory_reservationline r
                                 WHERE r.inventory_id = i.id AND r.status = 'active'), 0),
                       i.damaged, i.quality_control, i.safety_stock,
                       coalesce(l.damaged, 0), coalesce(l.quality_control, 0)
                FROM inventory_inventory i JOIN inventory_product p ON p.id = i.product_id
                LEFT JOIN l ON l.product_id = i.product_id AND l.warehouse_id = i.warehouse_id
                WHERE i.id = ANY(%(batch)s)
                ORDER BY i.id FOR NO KEY UPDATE OF i
                """,
                {**checkpoints.ledger_sums_sql(result.checkpoint)[1], "batch": batch},
            )
            ledger_rows, committed, corrections = [], [], []
            now = timezone.now()
            for (inv_id, product_id, warehouse_id, on_hand, reserved, allowance, version,
                 policy_allowance, policy, l_on_hand, l_reserved,
                 open_reserved, damaged, quality_control, safety_stock, l_damaged,
                 l_quality_control) in cursor.fetchall():  # fmt: skip
                d = by_id[inv_id]
                d.on_hand, d.reserved = on_hand, reserved
                d.allowance, d.policy_allowance = allowance, policy_allowance
                d.ledger_on_hand, d.ledger_reserved, d.open_reserved = (
                    l_on_hand,
                    l_reserved,
                    open_reserved,
                )
                d.damaged, d.quality_control = damaged, quality_control
                d.ledger_damaged, d.ledger_quality_control = l_damaged, l_quality_control
                # Good units on hand: the CHECK measures reservations against these.
                good = on_hand - damaged - quality_control
                target_reserved = reserved
                notes = []
                if open_reserved != reserved:
                    if good - open_reserved >= -allowance:
                        target_reserved = open_reserved
                    else:
                        notes.append(
                            f"open order lines hold {open_reserved} but on hand is {on_hand} "
                            f"(allowance {allowance}): release or re-route orders first"
                        )
                on_hand_delta = on_hand - l_on_hand
                reserved_delta = target_reserved - l_reserved
                # States, like on hand: the balance is kept and the ledger made to explain it.
                damaged_delta = damaged - l_damaged
                quality_control_delta = quality_control - l_quality_control
                if on_hand_delta or reserved_delta or damaged_delta or quality_control_delta:
                    text = (
                        f"reconcile: on hand {on_hand} (ledger {l_on_hand}); reserved {reserved} "
                        f"(ledger {l_reserved}, open order lines {open_reserved})"
                    )
                    if damaged_delta or quality_control_delta:
                        text += (
                            f"; damaged {damaged} (ledger {l_damaged}); quality control "
                            f"{quality_control} (ledger {l_quality_control})"
                        )
                    if target_reserved != reserved:
                        text += f"; reserved set to {target_reserved}"
                    ledger_rows.append(
                        InventoryTransaction(
                            product_id=product_id,
                            warehouse_id=warehouse_id,
                            type=TransactionType.ADJUST,
                            on_hand_delta=on_hand_delta,
                            reserved_delta=reserved_delta,
                            damaged_delta=damaged_delta,
                            quality_control_delta=quality_control_delta,
                            on_hand_after=on_hand,
                            reserved_after=target_reserved,
                            reference_type=ReferenceType.MANUAL,
                            reference_id=reference_id,
                            reason=f"{reason}: {text}" if reason else text,
                            created_by=RECONCILE_ACTOR,
                            created_at=now,
                        )
                    )
                target_allowance = allowance
                if policy_allowance != allowance:
                    if good - target_reserved >= -policy_allowance:
                        target_allowance = policy_allowance
                        text = (
                            f"reconcile: backorder allowance {allowance} but stock policy "
                            f"{policy} allows {policy_allowance}; set to {policy_allowance}"
                        )
                        corrections.append(
                            AllowanceCorrection(
                                inventory_id=inv_id,
                                old_allowance=allowance,
                                new_allowance=policy_allowance,
                                stock_policy=policy,
                                reference_id=reference_id,
                                reason=f"{reason}: {text}" if reason else text,
                                created_by=RECONCILE_ACTOR,
                            )
                        )
                    else:
                        notes.append(
                            f"open order lines hold {target_reserved} with on hand {on_hand}, "
                            f"more than stock policy {policy} allows (allowance "
                            f"{policy_allowance}): release or re-route orders first"
                        )
                if target_reserved != reserved or target_allowance != allowance:
                    cursor.execute(
                        "UPDATE inventory_inventory SET reserved = %s, backorder_allowance = %s, "
                        "version = version + 1, updated_at = %s WHERE id = %s",
                        [target_reserved, target_allowance, now, inv_id],
                    )
                    committed.append(
                        ledger.CommittedChange(
                            inventory_id=inv_id,
                            product_id=product_id,
                            warehouse_id=warehouse_id,
                            type=TransactionType.ADJUST,
                            on_hand=on_hand,
                            reserved=target_reserved,
                            version=version + 1,
                            unsellable=safety_stock + damaged + quality_control,
                        )
                    )
                d.note = "; ".join(notes)
                d.fixed = not notes
                result.fixed += d.fixed
                result.unfixable += not d.fixed
            InventoryTransaction.objects.bulk_create(ledger_rows)
            AllowanceCorrection.objects.bulk_create(corrections)
            if corrections:  # a cached availability entry carries the allowance
                skus = sorted({by_id[c.inventory_id].sku for c in corrections})
                transaction.on_commit(partial(availability_cache.invalidate, skus))
            if committed:
                ledger.publish_on_commit(tuple(committed))
        progress.advance(len(batch))
    missing = [d for d in result.discrepancies if d.inventory_id is None]
    for d in missing:  # product or warehouse vanished: nothing to attach a row to
        d.note = "no product/warehouse to create an inventory row for"
        result.unfixable += 1
