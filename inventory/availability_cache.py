"""The availability read model: per-SKU available stock per warehouse, in Redis.

PostgreSQL stays the only source of truth; this is a cache that is

* **written through after commit**: the service layer publishes every committed
  change (`services.COMMITTED_CHANGE_LISTENERS`), and `apply_committed_changes`
  writes the committed balances here;
* **versioned per inventory row**: each warehouse field carries the row's
  `version` (bumped under the row lock on every change), and a small Lua script
  applies a field only if its version is newer. Callbacks that run out of order,
  and a database fill racing a write-through, can never leave an older value;
* **bounded in staleness**: an entry is only complete (readable) once a fill from
  the database has set its `meta` field, and only a fill sets its TTL
  (`STOCKROOM_AVAILABILITY_TTL`, default 60 s). Write-throughs never extend it,
  so even if a write-through is lost (Redis blip), the entry is rebuilt from the
  database within the TTL;
* **optional**: every Redis error is logged and counted (`STATS`) and the caller
  falls back to the database. With no `REDIS_URL`, an in-process store with the
  same semantics serves (the embedded default).

Layout: one Redis hash per SKU, `<prefix>:avail:v1:<sku>`, fields `meta` (JSON:
product id, stock policy, allowance), `a:<warehouse code>` (available) and
`v:<warehouse code>` (row version).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)

# Counters for operations dashboards and tests: hits, misses, fills,
# write-throughs, stale (rejected by version) writes and Redis errors.
STATS: Counter[str] = Counter()

KEY_VERSION = "v1"

# KEYS: the SKUs' hashes, then order-memory keys. ARGV[1]: TTL seconds of the
# hashes; ARGV[2]: how many KEYS are hashes; ARGV[3]: TTL of the order memory.
# Then per hash, in KEYS order: its meta JSON ('' for a write-through), the
# number of fields n, and n triples (warehouse code, version, available). The
# remaining KEYS are set to '1' with the order-memory TTL (the sold-out gate's
# "this order holds a reservation"). One call carries a whole commit: the
# write-through of every row a batch changed and the memory of its orders.
# A field is written only if its version is newer than the stored one. Only a
# fill (meta given) sets the TTL; a write-through that creates a partial entry
# gives it the TTL too, so nothing lives forever. Multi-key: on Redis Cluster
# the keys would have to share a slot (docs/ARCHITECTURE.md, read model).
APPLY_SCRIPT = """
local ttl = tonumber(ARGV[1])
local hashes = tonumber(ARGV[2])
local applied = 0
local pos = 4
for k = 1, hashes do
  local key = KEYS[k]
  local meta = ARGV[pos]
  local n = tonumber(ARGV[pos + 1])
  pos = pos + 2
  for i = 1, n do
    local code = ARGV[pos]
    local version = tonumber(ARGV[pos + 1])
    local current = tonumber(redis.call('HGET', key, 'v:' .. code) or '-1')
    if version > current then
      redis.call('HSET', key, 'v:' .. code, version, 'a:' .. code, ARGV[pos + 2])
      applied = applied + 1
    end
    pos = pos + 3
  end
  if meta ~= '' then
    redis.call('HSET', key, 'meta', meta)
    redis.call('EXPIRE', key, ttl)
  elseif redis.call('TTL', key) == -1 then
    redis.call('EXPIRE', key, ttl)
  end
end
for k = hashes + 1, #KEYS do
  redis.call('SET', KEYS[k], '1', 'EX', ARGV[3])
end
return applied
"""


@dataclass
class StockSnapshot:
    """Committed availability of one SKU, per warehouse code."""

    sku: str
    product_id: str
    stock_policy: str
    allowance: int
    warehouses: dict[str, int] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    # Taken at fill time (refreshed at least every TTL): reorder thresholds per
    # warehouse (for low_stock) and when a depleted SKU can ship again.
    thresholds: dict[str, int] = field(default_factory=dict)
    ships_in_days: dict[str, int] | None = None

    def total_available(self, active_codes: Iterable[str] | None = None) -> int:
        if active_codes is None:
            return sum(self.warehouses.values())
        active = set(active_codes)
        return sum(v for code, v in self.warehouses.items() if code in active)


def _ttl() -> int:
    return int(getattr(settings, "STOCKROOM_AVAILABILITY_TTL", 60))


def _key(sku: str) -> str:
    prefix = getattr(settings, "STOCKROOM_AVAILABILITY_KEY_PREFIX", "stockroom")
    return f"{prefix}:avail:{KEY_VERSION}:{sku}"


# --------------------------------------------------------------------------
# Stores: Redis (Lua) and an in-process fallback with the same semantics
# --------------------------------------------------------------------------


class _RedisStore:
    def __init__(self) -> None:
        from django_redis import get_redis_connection

        self.client = get_redis_connection("default")
        self.script = self.client.register_script(APPLY_SCRIPT)

    def read(
        self, keys: Sequence[str], flag: str | None = None
    ) -> tuple[list[dict[str, str]], bool]:
        """HGETALL every key (and EXISTS `flag`) in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        if flag:
            pipe.exists(flag)
        raw = pipe.execute()
        entries = [
            {k.decode(): v.decode() for k, v in item.items()} if item else {}
            for item in raw[: len(keys)]
        ]
        return entries, bool(flag and raw[-1])

    def apply(self, writes: Sequence[tuple[str, str, list]], remember: Sequence[str] = ()) -> int:
        """Apply versioned writes and set order-memory keys, in one call."""
        keys: list[str] = []
        args: list[Any] = [_ttl(), len(writes), ORDER_MEMORY_SECONDS]
        for key, meta, fields in writes:
            keys.append(key)
            args += [meta, len(fields)]
            for code, version, available in fields:
                args += [code, version, available]
        return int(self.script(keys=keys + list(remember), args=args))

    def delete(self, keys: Sequence[str]) -> None:
        if keys:
            self.client.delete(*keys)


class _LocalStore:
    """In-process store for the embedded default (one process, no Redis)."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[float | None, dict[str, str]]] = {}
        self.lock = threading.Lock()

    def _get(self, key: str) -> dict[str, str] | None:
        item = self.data.get(key)
        if item is None:
            return None
        expires, entry = item
        if expires is not None and expires < time.monotonic():
            del self.data[key]
            return None
        return entry

    def read(
        self, keys: Sequence[str], flag: str | None = None
    ) -> tuple[list[dict[str, str]], bool]:
        with self.lock:
            entries = [dict(self._get(key) or {}) for key in keys]
            return entries, bool(flag and self._get(flag) is not None)

    def apply(self, writes: Sequence[tuple[str, str, list]], remember: Sequence[str] = ()) -> int:
        applied = 0
        with self.lock:
            for key in remember:
                self.data[key] = (time.monotonic() + ORDER_MEMORY_SECONDS, {})
            for key, meta, fields in writes:
                entry = self._get(key)
                expires = self.data[key][0] if entry is not None else None
                entry = entry if entry is not None else {}
                for code, version, available in fields:
                    if int(version) > int(entry.get(f"v:{code}", -1)):
                        entry[f"v:{code}"] = str(version)
                        entry[f"a:{code}"] = str(available)
                        applied += 1
                if meta or expires is None:
                    expires = time.monotonic() + _ttl()
                if meta:
                    entry["meta"] = meta
                self.data[key] = (expires, entry)
        return applied

    def delete(self, keys: Sequence[str]) -> None:
        with self.lock:
            for key in keys:
                self.data.pop(key, None)


_local_store = _LocalStore()
_redis_store: _RedisStore | None = None


def _store() -> _RedisStore | _LocalStore:
    global _redis_store
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.startswith("django_redis"):
        if _redis_store is None:
            _redis_store = _RedisStore()
        return _redis_store
    return _local_store


def reset_store() -> None:
    """Forget the Redis client (after settings change in tests)."""
    global _redis_store
    _redis_store = None
    _local_store.data.clear()


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


def _parse(sku: str, entry: dict[str, str]) -> StockSnapshot | None:
    meta = entry.get("meta")
    if not meta:
        return None  # absent or partial (write-throughs only): not readable
    info = json.loads(meta)
    snapshot = StockSnapshot(
        sku=sku,
        product_id=info["product_id"],
        stock_policy=info["stock_policy"],
        allowance=int(info["allowance"]),
        thresholds={code: int(t) for code, t in info.get("thresholds", {}).items()},
        ships_in_days=info.get("ships_in_days"),
    )
    for name, value in entry.items():
        if name.startswith("a:"):
            snapshot.warehouses[name[2:]] = int(value)
        elif name.startswith("v:"):
            snapshot.versions[name[2:]] = int(value)
    return snapshot


def load_from_database(skus: Sequence[str]) -> dict[str, StockSnapshot]:
    """One indexed query for every row of the given SKUs (the committed state).

    Inside `inventory_site.db_router.replica_reads()` it reads the replica;
    versions keep an older replica snapshot from overwriting newer cached values.
    """
    from inventory_site.db_router import read_alias

    if not skus:
        return {}
    placeholders = ", ".join(["%s"] * len(skus))
    sql = f"""
        SELECT p.sku, p.id, p.stock_policy, p.backorder_limit, w.code, i.available, i.version,
               i.reorder_threshold
        FROM inventory_product p
        LEFT JOIN inventory_inventory i ON i.product_id = p.id
        LEFT JOIN warehouses_warehouse w ON w.id = i.warehouse_id
        WHERE p.sku IN ({placeholders})
    """
    snapshots: dict[str, StockSnapshot] = {}
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, list(skus))
        rows = cursor.fetchall()
        for sku, product_id, policy, limit, code, available, version, threshold in rows:
            snap = snapshots.get(sku)
            if snap is None:
                snap = snapshots[sku] = StockSnapshot(
                    sku=sku,
                    product_id=str(product_id),
                    stock_policy=policy,
                    allowance=0 if policy == "normal" else int(limit),
                )
            if code is not None:
                snap.warehouses[code] = int(available)
                snap.versions[code] = int(version)
                snap.thresholds[code] = int(threshold)
    # "Ships in N days" matters only for SKUs that are low or out: look it up
    # (two queries, whatever the count) for those, at fill time.
    from .selectors import low_stock_level, ships_in_days_for_products

    low = [
        snap
        for snap in snapshots.values()
        if sum(max(v, 0) for v in snap.warehouses.values())
        <= low_stock_level(snap.thresholds.values())
    ]
    if low:
        etas = ships_in_days_for_products([uuid.UUID(snap.product_id) for snap in low])
        for snap in low:
            snap.ships_in_days = etas.get(uuid.UUID(snap.product_id))
    return snapshots


def _fill(snapshots: Iterable[StockSnapshot]) -> None:
    writes = []
    for snap in snapshots:
        meta = json.dumps(
            {
                "product_id": snap.product_id,
                "stock_policy": snap.stock_policy,
                "allowance": snap.allowance,
                "thresholds": snap.thresholds,
                "ships_in_days": snap.ships_in_days,
            }
        )
        fields = [(code, snap.versions[code], snap.warehouses[code]) for code in snap.warehouses]
        writes.append((_key(snap.sku), meta, fields))
    if not writes:
        return
    try:
        _store().apply(writes)
        STATS["fills"] += len(writes)
    except Exception:
        STATS["errors"] += 1
        logger.warning("availability cache fill failed", exc_info=True)


def read_cached(skus: Sequence[str]) -> dict[str, StockSnapshot]:
    """Complete cached entries only, in one round trip; {} if the cache is down."""
    found, _ = _read(skus)
    return found


def _read(skus: Sequence[str], flag: str | None = None) -> tuple[dict[str, StockSnapshot], bool]:
    skus = list(dict.fromkeys(skus))
    try:
        entries, flagged = _store().read([_key(sku) for sku in skus], flag)
    except Exception:
        STATS["errors"] += 1
        logger.warning("availability cache read failed", exc_info=True)
        return {}, True
    found = {}
    for sku, entry in zip(skus, entries, strict=True):
        snap = _parse(sku, entry)
        if snap is not None:
            found[sku] = snap
    return found, flagged


def get_many(skus: Sequence[str]) -> dict[str, StockSnapshot]:
    """Availability snapshots for SKUs: cache hits, plus the misses read from the
    database in one query and written back. Unknown SKUs are absent."""
    skus = list(dict.fromkeys(skus))
    found = read_cached(skus)
    STATS["hits"] += len(found)
    missing = [sku for sku in skus if sku not in found]
    if missing:
        STATS["misses"] += len(missing)
        loaded = load_from_database(missing)
        # Fill after reading the committed state: a concurrent write-through
        # with a newer version wins field by field, in either order.
        _fill(loaded.values())
        found.update(loaded)
    return found


# --------------------------------------------------------------------------
# Writing (after commit) and invalidation
# --------------------------------------------------------------------------


def apply_committed_changes(changes: Sequence[Any]) -> None:
    """The write-through: apply committed balances (service-layer listener).

    `changes` are `inventory.services.CommittedChange`s. Several changes to one
    row in one transaction collapse to the newest version. When `changes`
    carries `created_orders` (a reservation's commit), their gate memory is
    written in the same call.
    """
    latest: dict[tuple[str, str], Any] = {}
    unresolved = [c for c in changes if not c.sku or not c.warehouse_code]
    names = _natural_keys(unresolved) if unresolved else {}
    for change in changes:
        sku, code = (change.sku, change.warehouse_code)
        if not sku or not code:
            sku, code = names.get(change.inventory_id, (None, None))
            if sku is None:
                continue
        current = latest.get((sku, code))
        if current is None or change.version > current.version:
            latest[(sku, code)] = change
    by_key: dict[str, list] = {}
    for (sku, code), change in latest.items():
        by_key.setdefault(_key(sku), []).append((code, change.version, change.available))
    remember = [_order_key(o) for o in getattr(changes, "created_orders", ())]
    if not by_key and not remember:
        return
    try:
        applied = _store().apply(
            [(key, "", fields) for key, fields in by_key.items()], remember=remember
        )
        STATS["write_throughs"] += applied
        STATS["stale_writes"] += len(latest) - applied
    except Exception:
        STATS["errors"] += 1
        logger.warning("availability cache write-through failed", exc_info=True)


def _natural_keys(changes: Sequence[Any]) -> dict[Any, tuple[str, str]]:
    from .models import Inventory

    ids = [c.inventory_id for c in changes]
    rows = Inventory.objects.filter(pk__in=ids).values_list("pk", "product__sku", "warehouse__code")
    return {pk: (sku, code) for pk, sku, code in rows}


def invalidate(skus: Iterable[str]) -> None:
    """Drop entries (after a change the versions don't cover, e.g. stock policy)."""
    keys = [_key(sku) for sku in skus]
    try:
        _store().delete(keys)
    except Exception:
        STATS["errors"] += 1
        logger.warning("availability cache invalidation failed", exc_info=True)


# --------------------------------------------------------------------------
# The sold-out gate
# --------------------------------------------------------------------------


def _order_key(order_id: str) -> str:
    prefix = getattr(settings, "STOCKROOM_AVAILABILITY_KEY_PREFIX", "stockroom")
    return f"{prefix}:order:{KEY_VERSION}:{order_id}"


# How long the gate remembers that an order id has a reservation.
ORDER_MEMORY_SECONDS = 24 * 60 * 60


def sold_out_lines(
    lines: Sequence[tuple[str, str | None, int]],
    *,
    order_id: str | None = None,
    active_codes: Iterable[str] | None = None,
) -> list[dict[str, Any]] | None:
    """The gate in front of the database for reservations (one Redis round trip).

    `lines` are (sku, warehouse code or None for "any", quantity). Returns the
    short lines if **every** line is sold out (nothing available where it may be
    reserved) according to complete, committed cache entries of SKUs that do not
    allow backorders; otherwise None, and the database decides. A cache that is
    down, missing or partial never refuses anything, and neither does a retry of
    an order that already holds a reservation (its idempotent replay must reach
    the database).
    """
    if not lines or not getattr(settings, "STOCKROOM_SOLD_OUT_GATE", True):
        return None
    cached, known_order = _read(
        [sku for sku, _, _ in lines], _order_key(order_id) if order_id else None
    )
    if known_order:
        return None
    active = set(active_codes) if active_codes is not None else None
    short = []
    for sku, code, quantity in lines:
        snap = cached.get(sku)
        if snap is None or snap.stock_policy != "normal":
            return None
        if code is not None:
            available = snap.warehouses.get(code, 0)
            if active is not None and code not in active:
                available = 0
        else:
            available = snap.total_available(active)
        if available > 0:
            return None
        short.append({"sku": sku, "warehouse": code, "requested": quantity, "available": 0})
    STATS["gate_refusals"] += 1
    return short
