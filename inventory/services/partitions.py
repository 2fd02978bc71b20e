"""The ledger as a pg_partman range-partitioned table (issue #21): opt-in conversion,
maintenance, archive and restore of old partitions. PostgreSQL with pg_partman only.

The default schema keeps the plain table (fresh databases, SQLite, the test
suite); `ledger_partition_convert` (command `partition_ledger`) turns an existing
ledger into a table partitioned `BY RANGE (created_at)`, managed by pg_partman
4.7 (native partitioning, one partition per `STOCKROOM_LEDGER_PARTITION_INTERVAL`).
PostgreSQL wants the partition key in every unique index, so the partitioned
table's primary key is `(id, created_at)`; the Django model keeps `id` as its
pk field (nothing references the ledger by foreign key, and ids are UUIDv7, so
`id` stays unique in practice, no longer enforced across partitions).

Conversion, with a short write pause at the end (docs/SCALING_LEDGER.md):

1. create the partitioned twin (`inventory_ledger_partitioned`: columns,
   defaults, CHECKs, indexes and the foreign key to the stock row of the
   ledger), register it with pg_partman from the oldest row's period;
2. add a statement trigger on the live ledger that copies every new row into
   the twin (its CREATE waits for in-flight writers, so every row committed
   before it is visible to the copy that follows, and every later one is
   dual-written);
3. copy the existing rows in batches by id, each its own short transaction,
   `ON CONFLICT DO NOTHING` (a row may arrive both ways);
4. check both tables hold as many rows (one statement, one snapshot: every
   writer since step 2 wrote both in one transaction), then, under an ACCESS
   EXCLUSIVE lock on the ledger (writers wait; catalog changes only, the lock
   wait bounded by `lock_timeout` and retried): drop the copy trigger, rename
   the old table `inventory_ledger_unpartitioned` (kept, never dropped by this
   code) and the twin, its indexes and partitions to the ledger's names, move
   the ledger's own triggers (append-only, events) to the new table, and point
   pg_partman's config at the new name.

Triggers on a partitioned table are cloned to every partition, present and
future, so the append-only trigger refuses UPDATE/DELETE on a partition
addressed directly too.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from .. import errors
from ..models import LedgerArchive
from . import checkpoints

LEDGER = "inventory_inventorytransaction"
TWIN = "inventory_ledger_partitioned"
RETIRED = "inventory_ledger_unpartitioned"
DUAL_WRITE = "inventory_ledger_dual_write"
PARTMAN = "partman"  # the extension's schema
COPY_BATCH = 50_000
SWAP_LOCK_TIMEOUT = "1s"  # give up (and retry) rather than queue writers long
SWAP_ATTEMPTS = 5
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _require_postgresql() -> None:
    if connection.vendor != "postgresql":
        raise errors.LedgerPartitionError("Ledger partitioning needs PostgreSQL with pg_partman.")


def _one(sql: str, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _run(*statements: str | tuple) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            if isinstance(statement, tuple):
                cursor.execute(*statement)
            else:
                cursor.execute(statement)


def _schema() -> str:
    return _one("SELECT current_schema()")


def partman_available() -> bool:
    """Whether the pg_partman extension can be created in this database."""
    if connection.vendor != "postgresql":
        return False
    return bool(_one("SELECT count(*) FROM pg_available_extensions WHERE name = 'pg_partman'"))


def ledger_is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    return _one("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [LEDGER]) == "p"


def _ensure_partman() -> None:
    if not partman_available():
        raise errors.LedgerPartitionError(
            "pg_partman is not installed on this PostgreSQL server "
            "(Debian: apt-get install postgresql-15-partman)."
        )
    _run(
        f"CREATE SCHEMA IF NOT EXISTS {PARTMAN}",
        f"CREATE EXTENSION IF NOT EXISTS pg_partman SCHEMA {PARTMAN}",
    )


def _config_sql(parent: str) -> tuple:
    """pg_partman's settings for the ledger, from the project's settings (one source)."""
    return (
        f"""
        UPDATE {PARTMAN}.part_config
        SET premake = %s, retention = nullif(%s, ''), retention_keep_table = true,
            retention_keep_index = true, infinite_time_partitions = true
        WHERE parent_table = %s
        """,
        [settings.STOCKROOM_LEDGER_PREMAKE, settings.STOCKROOM_LEDGER_RETENTION, parent],
    )


# --------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------


@dataclass
class ConversionResult:
    rows: int = 0
    partitions: int = 0
    seconds_copy: float = 0.0
    seconds_pause: float = 0.0  # the ACCESS EXCLUSIVE part (writers wait)
    seconds_total: float = 0.0
    batches: int = 0


def _indexes(table: str) -> list[tuple[str, str]]:
    """(name, definition) of a table's indexes other than its primary key."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT i.relname, pg_get_indexdef(i.oid)
            FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
            WHERE x.indrelid = to_regclass(%s) AND NOT x.indisprimary ORDER BY i.relname
            """,
            [table],
        )
        return cursor.fetchall()


def _foreign_keys(table: str) -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = to_regclass(%s) AND contype = 'f' ORDER BY conname
            """,
            [table],
        )
        return cursor.fetchall()


def _triggers(table: str) -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger
            WHERE tgrelid = to_regclass(%s) AND NOT tgisinternal ORDER BY tgname
            """,
            [table],
        )
        return cursor.fetchall()


def _twin_index_name(name: str) -> str:
    return f"{name[:58]}_twin"


def _create_twin(interval: str, premake: int) -> None:
    """Step 1: the partitioned twin, registered with pg_partman."""
    schema = _schema()
    start = _one(f"SELECT min(created_at) FROM {LEDGER}") or timezone.now()
    statements: list = [
        f"""
        CREATE TABLE {TWIN} (LIKE {LEDGER} INCLUDING DEFAULTS INCLUDING CONSTRAINTS
                             INCLUDING STORAGE INCLUDING COMMENTS)
        PARTITION BY RANGE (created_at)
        """,
        f"ALTER TABLE {TWIN} ADD CONSTRAINT {TWIN}_pkey PRIMARY KEY (id, created_at)",
    ]
    for name, definition in _indexes(LEDGER):
        statements.append(
            definition.replace(f"INDEX {name} ON", f"INDEX {_twin_index_name(name)} ON", 1).replace(
                f" ON {schema}.{LEDGER} ", f" ON {schema}.{TWIN} ", 1
            )
        )
    statements.append(
        (
            f"""
            SELECT {PARTMAN}.create_parent(
                p_parent_table := %s, p_control := 'created_at', p_type := 'native',
                p_interval := %s, p_premake := %s, p_start_partition := %s, p_jobmon := false)
            """,
            [f"{schema}.{TWIN}", interval, premake, start.isoformat()],
        )
    )
    statements.append(_config_sql(f"{schema}.{TWIN}"))
    with transaction.atomic():
        _run(*statements)
    # The foreign key to the stock row last, in its own short transaction: adding
    # it locks inventory_inventory against writes (SHARE ROW EXCLUSIVE) until
    # commit, so not while pg_partman creates the partitions (seconds under load).
    with transaction.atomic():
        _run(
            *(
                f"ALTER TABLE {TWIN} ADD CONSTRAINT {name} {definition}"
                for name, definition in _foreign_keys(LEDGER)
            )
        )


def _add_dual_write() -> None:
    """Step 2: every row written to the live ledger from now on is copied to the twin."""
    _run(
        f"""
        CREATE OR REPLACE FUNCTION {DUAL_WRITE}() RETURNS trigger LANGUAGE plpgsql AS $f$
        BEGIN
            INSERT INTO {TWIN} SELECT * FROM new_ledger_rows ON CONFLICT DO NOTHING;
            RETURN NULL;
        END $f$
        """,
        f"""
        CREATE TRIGGER {DUAL_WRITE} AFTER INSERT ON {LEDGER}
        REFERENCING NEW TABLE AS new_ledger_rows
        FOR EACH STATEMENT EXECUTE FUNCTION {DUAL_WRITE}()
        """,
    )


def _copy_batches(batch: int, after_batch: Callable[[int], None] | None) -> tuple[int, int]:
    """Step 3: the rows that existed before the trigger, in batches by id.

    Every batch reads through one snapshot, exported by a second connection just
    after the trigger was created (as pg_dump does): it holds every row
    committed before the trigger, and the rows written later (dual-written
    anyway) do not keep the copy chasing the writers' tail. Ids need not be
    time-ordered for this."""
    holder = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        holder.set_autocommit(False)
        with holder.cursor() as held:
            held.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            held.execute("SELECT pg_export_snapshot()")
            snapshot = held.fetchone()[0]
        last, copied, batches = None, 0, 0
        while True:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cursor.execute("SET TRANSACTION SNAPSHOT %s", [snapshot])
                cursor.execute(
                    f"""
                    WITH b AS (
                        SELECT * FROM {LEDGER}
                        WHERE %(after)s::uuid IS NULL OR id > %(after)s::uuid
                        ORDER BY id LIMIT %(n)s
                    ), ins AS (
                        INSERT INTO {TWIN} SELECT * FROM b ON CONFLICT DO NOTHING
                    )
                    SELECT (SELECT id FROM b ORDER BY id DESC LIMIT 1), (SELECT count(*) FROM b)
                    """,
                    {"after": last, "n": batch},
                )
                last_id, n = cursor.fetchone()
            if not n:
                return copied, batches
            last, copied, batches = last_id, copied + n, batches + 1
            if after_batch is not None:
                after_batch(copied)
    finally:
        holder.rollback()
        holder.close()


def _swap_statements(schema: str) -> list:
    statements: list = [f"DROP TRIGGER {DUAL_WRITE} ON {LEDGER}", f"DROP FUNCTION {DUAL_WRITE}()"]
    # Free the ledger's names: the old table and its indexes get retired names.
    statements.append(f"ALTER TABLE {LEDGER} RENAME TO {RETIRED}")
    statements.append(f"ALTER INDEX {LEDGER}_pkey RENAME TO {RETIRED}_pkey")
    indexes = _indexes(LEDGER)
    for name, _ in indexes:
        statements.append(f"ALTER INDEX {name} RENAME TO {name[:59]}_old")
    statements.append(f"ALTER TABLE {TWIN} RENAME TO {LEDGER}")
    statements.append(f"ALTER INDEX {TWIN}_pkey RENAME TO {LEDGER}_pkey")
    for name, _ in indexes:
        statements.append(f"ALTER INDEX {_twin_index_name(name)} RENAME TO {name}")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid "
            "WHERE h.inhparent = to_regclass(%s)",
            [TWIN],
        )
        for (child,) in cursor.fetchall():
            statements.append(f"ALTER TABLE {child} RENAME TO {LEDGER}{child[len(TWIN) :]}")
    # The ledger's own triggers (append-only, events) move to the new table; the
    # retired table keeps its copies (nothing writes to it any more).
    for name, definition in _triggers(LEDGER):
        if name == DUAL_WRITE:
            continue
        statements.append(definition)  # read before the renames: "ON <the ledger>" is the new table
    statements.append(
        (
            f"UPDATE {PARTMAN}.part_config SET parent_table = %s WHERE parent_table = %s",
            [f"{schema}.{LEDGER}", f"{schema}.{TWIN}"],
        )
    )
    return statements


def _verify_counts() -> None:
    """Both tables hold the same rows in any one snapshot once the copy is done
    (every writer since the trigger wrote both in one transaction), so one
    statement counts both without pausing anyone."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT (SELECT count(*) FROM {LEDGER}), (SELECT count(*) FROM {TWIN})")
        old, new = cursor.fetchone()
    if old != new:
        raise errors.LedgerPartitionError(
            f"Row counts differ after the copy: ledger {old}, partitioned {new}; "
            "nothing was swapped.",
            details={"ledger": old, "partitioned": new},
        )


def _swap() -> float:
    """Step 4, under an ACCESS EXCLUSIVE lock (catalog changes only): returns how
    long it held writers (its lock wait included)."""
    schema = _schema()
    for attempt in range(SWAP_ATTEMPTS):
        started = time.monotonic()
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'")
                cursor.execute(f"LOCK TABLE {LEDGER} IN ACCESS EXCLUSIVE MODE")
                for statement in _swap_statements(schema):
                    if isinstance(statement, tuple):
                        cursor.execute(*statement)
                    else:
                        cursor.execute(statement)
            return time.monotonic() - started
        except errors.LedgerPartitionError:
            raise
        except Exception as exc:  # lock_timeout: writers held the table; try again
            if "lock timeout" not in str(exc) or attempt == SWAP_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def _drop_twin() -> None:
    """Undo steps 1-2 of an interrupted conversion (the live ledger is untouched)."""
    schema = _schema()
    _run(
        f"DROP TRIGGER IF EXISTS {DUAL_WRITE} ON {LEDGER}",
        f"DROP FUNCTION IF EXISTS {DUAL_WRITE}()",
        f"DROP TABLE IF EXISTS {TWIN} CASCADE",
    )
    if _one("SELECT to_regclass(%s)", [f"{PARTMAN}.part_config"]):
        _run(
            (
                f"DELETE FROM {PARTMAN}.part_config WHERE parent_table = %s",
                [f"{schema}.{TWIN}"],
            ),
            f"DROP TABLE IF EXISTS {PARTMAN}.template_{schema}_{TWIN}",
        )


def ledger_partition_convert(
    *,
    interval: str | None = None,
    premake: int | None = None,
    batch: int = COPY_BATCH,
    verify: bool = True,
    restart: bool = False,
    after_batch: Callable[[int], None] | None = None,
) -> ConversionResult:
    """Convert the plain ledger to a pg_partman-managed partitioned table (see the
    module docstring for the steps). Writers keep going during the copy; they
    wait only for step 4. `restart` first removes the twin of an interrupted
    run. `after_batch(rows_copied)` is called between copy batches (tests use it
    to write while the copy runs). Must not run inside a transaction."""
    _require_postgresql()
    if connection.in_atomic_block:
        raise errors.LedgerPartitionError("partition_ledger cannot run inside a transaction.")
    if ledger_is_partitioned():
        raise errors.LedgerPartitionError("The ledger is already partitioned.")
    if _one("SELECT to_regclass(%s)", [RETIRED]):
        raise errors.LedgerPartitionError(
            f"{RETIRED} exists (a previous conversion's old table): drop or rename it first."
        )
    _ensure_partman()
    if _one("SELECT to_regclass(%s)", [TWIN]):
        if not restart:
            raise errors.LedgerPartitionError(
                f"{TWIN} exists (an interrupted conversion): run again with --restart."
            )
        _drop_twin()
    result = ConversionResult()
    started = time.monotonic()
    try:
        _create_twin(
            interval or settings.STOCKROOM_LEDGER_PARTITION_INTERVAL,
            premake or settings.STOCKROOM_LEDGER_PREMAKE,
        )
        _add_dual_write()
        result.rows, result.batches = _copy_batches(batch, after_batch)
        result.seconds_copy = time.monotonic() - started
        if verify:
            _verify_counts()
        result.seconds_pause = _swap()
    except BaseException:
        _drop_twin()
        raise
    _run(f"ANALYZE {LEDGER}")
    result.partitions = len(ledger_partitions())
    result.seconds_total = time.monotonic() - started
    return result


# --------------------------------------------------------------------------
# Maintenance, partitions, archive and restore
# --------------------------------------------------------------------------


@dataclass
class Partition:
    name: str
    lower: dt.datetime
    upper: dt.datetime
    attached: bool = True


def _bounds(name: str, parent: str) -> tuple[dt.datetime, dt.datetime]:
    """A partition's range: from its bound if attached, else (detached by
    retention) from its name's suffix and pg_partman's interval for the ledger."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT m[1]::timestamptz, m[2]::timestamptz FROM (
                SELECT regexp_match(pg_get_expr(relpartbound, oid, true),
                                    'FROM \\(''([^'']+)''\\) TO \\(''([^'']+)''\\)') AS m
                FROM pg_class WHERE oid = to_regclass(%s)
            ) b WHERE m IS NOT NULL
            """,
            [name],
        )
        row = cursor.fetchone()
        if row:
            return row
        cursor.execute(
            f"""
            SELECT to_timestamp(%s, datetime_string),
                   to_timestamp(%s, datetime_string) + partition_interval::interval
            FROM {PARTMAN}.part_config WHERE parent_table = %s
            """,
            [name[len(LEDGER) + 2 :]] * 2 + [parent],
        )
        return cursor.fetchone()


def ledger_partitions(*, detached: bool = False) -> list[Partition]:
    """The ledger's range partitions, oldest first (not the default one); with
    `detached`, also the tables pg_partman's retention detached from it."""
    if not ledger_is_partitioned():
        return []
    schema = _schema()
    parent = f"{schema}.{LEDGER}"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT partition_tablename FROM {PARTMAN}.show_partitions(%s)", [parent])
        names = [(r[0], True) for r in cursor.fetchall()]
        if detached:
            cursor.execute(
                """
                SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                WHERE n.nspname = %s AND c.relkind = 'r' AND c.relname LIKE %s
                  AND NOT c.relispartition ORDER BY c.relname
                """,
                [schema, f"{LEDGER}\\_p%"],
            )
            names += [(r[0], False) for r in cursor.fetchall()]
    found = [Partition(name, *_bounds(name, parent), attached=a) for name, a in names]
    return sorted(found, key=lambda p: p.lower)


def ledger_partition_maintenance() -> str:
    """pg_partman's maintenance for the ledger (partitions ahead, retention by
    detaching), with the settings applied first. Nothing to do (and says so) when
    the ledger is not partitioned."""
    if not ledger_is_partitioned():
        return "ledger not partitioned: nothing to do"
    parent = f"{_schema()}.{LEDGER}"
    with transaction.atomic():
        _run(
            _config_sql(parent),
            (
                f"SELECT {PARTMAN}.run_maintenance(p_parent_table := %s, p_jobmon := false)",
                [parent],
            ),
        )
    parts = ledger_partitions()
    newest = parts[-1].upper.isoformat() if parts else "none"
    return f"{len(parts)} ledger partitions, the newest ends {newest}"


@dataclass
class ArchiveResult:
    archived: list[LedgerArchive] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (partition, why)


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".csv.gz") + ".json")


def _columns(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            [table],
        )
        return [r[0] for r in cursor.fetchall()]


def _write_archive(part: Partition, directory: Path) -> tuple[Path, int, str]:
    """COPY one partition into `<name>.csv.gz` (written under a temporary name,
    fsynced, then renamed) and its manifest; returns (path, rows, sha256)."""
    path = directory / f"{part.name}.csv.gz"
    tmp = path.with_name(path.name + ".partial")
    columns = _columns(part.name)
    digest = hashlib.sha256()
    connection.ensure_connection()
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as gz:
        with (
            connection.connection.cursor() as cursor,
            cursor.copy(
                f"COPY (SELECT {', '.join(columns)} FROM {part.name} ORDER BY created_at, id) "
                "TO STDOUT (FORMAT csv, HEADER)"
            ) as copy,
        ):
            for chunk in copy:
                gz.write(chunk)
        gz.close()
        raw.flush()
        os.fsync(raw.fileno())
    with open(tmp, "rb") as done:
        for block in iter(lambda: done.read(1 << 20), b""):
            digest.update(block)
    rows = _one(f"SELECT count(*) FROM {part.name}")
    written = _count_csv_rows(tmp)
    if written != rows:
        tmp.unlink()
        raise errors.LedgerPartitionError(
            f"{part.name}: {rows} rows in the table but {written} in the file; nothing dropped."
        )
    tmp.rename(path)
    _manifest_path(path).write_text(
        json.dumps(
            {
                "partition": part.name,
                "lower": part.lower.isoformat(),
                "upper": part.upper.isoformat(),
                "rows": rows,
                "sha256": digest.hexdigest(),
                "columns": columns,
                "archived_at": timezone.now().isoformat(),
            },
            indent=2,
        )
    )
    return path, rows, digest.hexdigest()


def _count_csv_rows(path: Path) -> int:
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def _detach(name: str) -> None:
    """DETACH takes an ACCESS EXCLUSIVE lock on the ledger (catalog only; CONCURRENTLY
    is not allowed while a default partition exists): bounded and retried like the
    conversion's swap, so writers never queue long behind it."""
    for attempt in range(SWAP_ATTEMPTS):
        try:
            with transaction.atomic():
                _run(
                    f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'",
                    f"ALTER TABLE {LEDGER} DETACH PARTITION {name}",
                )
            return
        except Exception as exc:
            if "lock timeout" not in str(exc) or attempt == SWAP_ATTEMPTS - 1:
                raise


def ledger_partitions_archive(*, older_than: dt.timedelta, directory: Path) -> ArchiveResult:
    """Detach the ledger partitions that ended more than `older_than` ago (and take
    the ones pg_partman's retention already detached), write each to a gzipped
    CSV with a JSON manifest (bounds, rows, sha256), check the file's row count,
    record it in `LedgerArchive`, and only then drop the table.

    A partition that ends after the newest balance checkpoint's position is not
    archived (reconcile still reads its rows): take a checkpoint first."""
    _require_postgresql()
    if not ledger_is_partitioned():
        raise errors.LedgerPartitionError("The ledger is not partitioned (run partition_ledger).")
    directory.mkdir(parents=True, exist_ok=True)
    cutoff = timezone.now() - older_than
    checkpoint = checkpoints.latest_checkpoint()
    result = ArchiveResult()
    for part in ledger_partitions(detached=True):
        if part.attached and part.upper > cutoff:
            continue
        if checkpoint is None or part.upper > checkpoint.position:
            result.skipped.append((part.name, "not covered by a balance checkpoint yet"))
            continue
        if part.attached:
            _detach(part.name)
        path, rows, sha = _write_archive(part, directory)
        with transaction.atomic():
            result.archived.append(
                LedgerArchive.objects.create(
                    partition=part.name,
                    lower=part.lower,
                    upper=part.upper,
                    rows=rows,
                    path=str(path.resolve()),
                    sha256=sha,
                )
            )
            _run(f"DROP TABLE {part.name}")
    return result


def ledger_partition_restore(*, path: Path) -> LedgerArchive | None:
    """Load an archived partition back from its file (checked against its
    manifest: sha256, row count) and attach it to the ledger again."""
    _require_postgresql()
    if not ledger_is_partitioned():
        raise errors.LedgerPartitionError("The ledger is not partitioned (run partition_ledger).")
    manifest_path = _manifest_path(path)
    if not path.is_file() or not manifest_path.is_file():
        raise errors.LedgerPartitionError(f"{path}: the archive or its manifest is missing.")
    manifest = json.loads(manifest_path.read_text())
    name = manifest["partition"]
    if not _NAME.match(name) or not name.startswith(f"{LEDGER}_p"):
        raise errors.LedgerPartitionError(f"{manifest_path}: not a ledger partition ({name!r}).")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != manifest["sha256"]:
        raise errors.LedgerPartitionError(f"{path}: checksum does not match its manifest.")
    if _one("SELECT to_regclass(%s)", [name]):
        raise errors.LedgerPartitionError(f"{name} already exists in the database.")
    columns = ", ".join(manifest["columns"])
    with transaction.atomic():
        _run(f"CREATE TABLE {name} (LIKE {LEDGER} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        load = f"COPY {name} ({columns}) FROM STDIN (FORMAT csv, HEADER)"
        with (
            connection.connection.cursor() as cursor,
            cursor.copy(load) as copy,
            gzip.open(path, "rb") as gz,
        ):
            for block in iter(lambda: gz.read(1 << 20), b""):
                copy.write(block)
        rows = _one(f"SELECT count(*) FROM {name}")
        if rows != manifest["rows"]:
            raise errors.LedgerPartitionError(
                f"{path}: {rows} rows loaded, the manifest says {manifest['rows']}."
            )
        _run(
            (
                f"ALTER TABLE {LEDGER} ATTACH PARTITION {name} "
                "FOR VALUES FROM (%s::timestamptz) TO (%s::timestamptz)",
                [manifest["lower"], manifest["upper"]],
            )
        )
        record = LedgerArchive.objects.filter(partition=name).order_by("-archived_at").first()
        if record is not None:
            record.restored_at = timezone.now()
            record.save(update_fields=["restored_at"])
    return record
