#!/usr/bin/env bash
# Benchmarks for issue 6's bulk work, on a database of their own.
# Usage: bench/bulk.sh [SKUS] [WAREHOUSES] [RECEIPT_ROWS]   (defaults 1000000 10 1000000)
# Prints "BENCH <label>: <s> s, <rows/s>, peak RSS <MB>" lines; docs/PERFORMANCE.md
# ("Bulk work") records them. Drops and recreates the database stockroom_bulk_bench (its own; not shared).
set -euo pipefail
cd "$(dirname "$0")/.."
SKUS=${1:-1000000}
WAREHOUSES=${2:-10}
RECEIPT=${3:-1000000}
DB=${BENCH_DB:-stockroom_bulk_bench}
export DATABASE_URL=${BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DB}
export REDIS_URL=${BENCH_REDIS_URL:-redis://127.0.0.1:6379/5}
PY=.venv/bin/python
M="$PY bench/_measure.py"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

dropdb -h 127.0.0.1 -U postgres --if-exists "$DB"
createdb -h 127.0.0.1 -U postgres "$DB"
$PY manage.py migrate -v0

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM; $(psql "$DATABASE_URL" -Atc 'select version()' | cut -d, -f1)"
$M "seed_demo ${SKUS}x${WAREHOUSES}" $((SKUS * WAREHOUSES)) -- \
    $PY manage.py seed_demo --skus "$SKUS" --warehouses "$WAREHOUSES" --no-progress
$M "seed_demo re-run (idempotent, nothing new)" $((SKUS * WAREHOUSES)) -- \
    $PY manage.py seed_demo --skus "$SKUS" --warehouses "$WAREHOUSES" --no-progress
$M "reconcile after seed" $((SKUS * WAREHOUSES)) -- $PY manage.py reconcile

$PY bench/make_receipt.py "$RECEIPT" "$WAREHOUSES" > "$TMP/receipt.csv"
echo "receipt: $RECEIPT rows, $(du -h "$TMP/receipt.csv" | cut -f1)"
$M "bulk_receive --dry-run" "$RECEIPT" -- \
    $PY manage.py bulk_receive "$TMP/receipt.csv" --reference BENCH-1 --dry-run --no-progress
$M "bulk_receive (atomic)" "$RECEIPT" -- \
    $PY manage.py bulk_receive "$TMP/receipt.csv" --reference BENCH-1 --no-progress
$M "bulk_receive re-run (all already applied)" "$RECEIPT" -- \
    $PY manage.py bulk_receive "$TMP/receipt.csv" --reference BENCH-1 --no-progress
$M "bulk_receive --skip-invalid (chunked commits)" "$RECEIPT" -- \
    $PY manage.py bulk_receive "$TMP/receipt.csv" --reference BENCH-2 --skip-invalid --no-progress
$M "reconcile after receipts" $((SKUS * WAREHOUSES)) -- $PY manage.py reconcile
$M "export_inventory" $((SKUS * WAREHOUSES)) -- \
    $PY manage.py export_inventory --output "$TMP/export.csv"

psql "$DATABASE_URL" -Atc "select 'sizes: inventory ' || pg_size_pretty(pg_total_relation_size('inventory_inventory')) || ', ledger ' || pg_size_pretty(pg_total_relation_size('inventory_inventorytransaction')) || ' (' || (select count(*) from inventory_inventorytransaction) || ' rows), applied operations ' || pg_size_pretty(pg_total_relation_size('inventory_appliedoperation'))"
if [ -z "${KEEP_BENCH_DB:-}" ]; then dropdb -h 127.0.0.1 -U postgres "$DB"; fi
