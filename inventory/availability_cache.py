"""The availability read model: per-SKU available stock per warehouse, in Redis.

(Longer than ~500 lines on purpose: the Redis store, its in-process twin and
the Lua script must change together, and the entry layout below is their one
contract; splitting them would put that contract in three files.)

PostgreSQL stays the only source of truth; this is a cache that is

* **written through after commit**: the service layer publishes every committed
  change (`services.COMMITTED_CHANGE_LISTENERS`), and `apply_committed_changes`
  writes the committed balances here; with STOCKROOM_WRITE_BEHIND_MS set
  (opt-in), a reservation's write waits a few milliseconds for the process's
  other reservations (`write_behind`; it only lowers availability, so the gate
  refuses less meanwhile, never more), and every read here sends this
  process's queue first;
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

* **aware of hold expiry**: each warehouse field also carries the row's
  expiring holds (`h:<code>`, below), so a reader computes at read time, with
  `inventory.clock.now()`, what a hold past its `expires_at` frees: a lapsed hold
  counts nowhere, at once, without a database round trip and without waiting
  for the sweeper;
* **generation-checked fills**: `invalidate` bumps the entry's generation (`g`)
  and a fill writes only if the generation it read before its database query is
  still current, so a fill that read the database before a policy change
  committed cannot restore the old policy after the invalidation.

Layout: one Redis hash per SKU, `<prefix>:avail:v2:<sku>`, fields `meta` (JSON:
product id, stock policy, allowance; a bundle's composition), `g` (generation),
`c` (a bundle's component SKUs, written with `meta`: the read script reads
their entries with the bundle's, in the same string), and per warehouse
`a:<code>` (on hand - reserved, every hold counted), `v:<code>` (row version)
and `h:<code>` (the row's holds that have an `expires_at`):

    ''                    no expiring holds
    '?'                   unknown (a change this entry could not follow): the
                          entry is read as a miss and refilled
    'U|F:q|t1:q1,t2:q2'   q units held until F or earlier (merged: every such
                          hold has lapsed), q1 until t1, ... (instants in
                          microseconds since the epoch, ascending); the list is
                          exact for every instant before U; U empty = complete

A reader's available = a + (units of holds with expires_at <= now); if now >= U
(or a count is negative: a release whose reservation's write-through is still in
flight) the entry does not know enough and is read as a miss. At most
STOCKROOM_AVAILABILITY_HOLDS (16) instants are kept per row. `hv:<code>` is the
version the holds were last filled at: write-throughs add their hold changes
(commutative, so in any arrival order) when their version is newer than it.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Sum

from .prepared import prepared_cursor
from .write_behind import WriteBehind

logger = logging.getLogger(__name__)

# Counters for operations dashboards and tests: hits, misses, fills,
# write-throughs, stale (rejected by version) writes and Redis errors.
STATS: Counter[str] = Counter()

# v2: entries carry hold expiries (h:<code>) and a generation (g); v1 entries
# (no holds) are simply never read. The gate's order memory keeps its own key.
KEY_VERSION = "v2"
ORDER_KEY_VERSION = "v1"

# KEYS: the SKUs' hashes, then order-memory keys. ARGV[1]: TTL seconds of the
# hashes; ARGV[2]: how many KEYS are hashes; ARGV[3]: TTL of the order memory;
# ARGV[4]: now (microseconds since the epoch, inventory.clock); ARGV[5]: how many
# hold instants a row keeps. Then per hash, in KEYS order: its meta JSON ('' for a
# write-through), the generation the fill read ('' = none; ignored for a
# write-through), the number of fields n, and n quintuples (warehouse code,
# version, available, mode, holds):
#   mode '=' (a fill): written if version >= the stored one; holds is the row's
#            whole hold string, and `version` becomes its base (hv:<code>);
#   mode '+' (a write-through that knows its hold changes): available written if
#            the version is newer; holds ("t:dq,t:dq", may be empty) are added to
#            the stored holds if the version is newer than their base, whatever
#            order write-throughs arrive in (adding is commutative; a version
#            at or below the base is already in it);
#   mode '?' (a write-through that may have changed holds without saying how):
#            available as above; the holds become unknown ('?') if the version
#            is newer than their base.
# A row without a hold base (created by write-throughs alone) has unknown holds.
# The remaining KEYS are set to '1' with the order-memory TTL (the sold-out
# gate's "this order holds a reservation"). One call carries a whole commit.
# A fill whose generation is no longer the stored one (an invalidation ran
# after it read the database) writes nothing. Only a fill sets the TTL (less up
# to a fifth of it, spread by key: `fill_ttl`); a write-through that creates a
# partial entry gives it the TTL too, so nothing lives forever. Multi-key: on
# Redis Cluster the keys would have to share a slot (docs/ARCHITECTURE.md, read
# model).
APPLY_SCRIPT = """
local ttl = tonumber(ARGV[1])
local hashes = tonumber(ARGV[2])
local now = tonumber(ARGV[4])
local cap = tonumber(ARGV[5])

local function fmt(x) return string.format('%d', x) end

-- A fill's TTL: the configured TTL less up to a fifth of it, spread by key and
-- instant, so entries filled together (a warm-up, a page of misses) do not all
-- expire in the same second and send their readers to the database at once.
-- Never longer than the TTL: the staleness bound stays.
local function fill_ttl(key)
  local spread = math.floor(ttl / 5)
  if spread < 1 then return ttl end
  return ttl - tonumber(string.sub(redis.sha1hex(key .. ARGV[4]), 1, 6), 16) % (spread + 1)
end

local function apply_holds(h, delta)
  if h == '?' then return '?' end
  local upto, floor_t, floor_q, entries = nil, nil, 0, {}
  if h ~= '' then
    local u, f, list = string.match(h, '^([^|]*)|([^|]*)|(.*)$')
    if u == nil then return '?' end
    upto = tonumber(u)
    if f ~= '' then
      local a, b = string.match(f, '^(%-?%d+):(%-?%d+)$')
      floor_t = tonumber(a); floor_q = tonumber(b)
    end
    for a, b in string.gmatch(list, '(%-?%d+):(%-?%d+)') do
      entries[tonumber(a)] = (entries[tonumber(a)] or 0) + tonumber(b)
    end
  end
  for a, b in string.gmatch(delta, '(%-?%d+):(%-?%d+)') do
    local t, dq = tonumber(a), tonumber(b)
    if floor_t ~= nil and t <= floor_t then
      floor_q = floor_q + dq
    elseif upto == nil or t < upto then
      entries[t] = (entries[t] or 0) + dq
    end
  end
  local keys = {}
  for t, q in pairs(entries) do
    if q ~= 0 then
      if t <= now then
        floor_q = floor_q + q
        if floor_t == nil or t > floor_t then floor_t = t end
      else
        keys[#keys + 1] = t
      end
    end
  end
  table.sort(keys)
  while #keys > cap do
    upto = keys[#keys]
    keys[#keys] = nil
  end
  if floor_q == 0 then floor_t = nil end
  if upto == nil and floor_t == nil and #keys == 0 then return '' end
  local out = {}
  for i, t in ipairs(keys) do out[i] = fmt(t) .. ':' .. fmt(entries[t]) end
  return (upto and fmt(upto) or '') .. '|' ..
         (floor_t and (fmt(floor_t) .. ':' .. fmt(floor_q)) or '') .. '|' ..
         table.concat(out, ',')
end

-- A bundle's entry also keeps its component SKUs in `c` (joined by ','; no SKU
-- contains one), taken from the meta it is filled with, so READ_SCRIPT can read
-- the components' entries with the bundle's. A plain SKU's entry has no `c`.
local function composition(key, meta)
  if string.find(meta, '"components"', 1, true) then
    local skus = {}
    for i, part in ipairs(cjson.decode(meta)['components']) do skus[i] = part[1] end
    redis.call('HSET', key, 'c', table.concat(skus, ','))
  else
    redis.call('HDEL', key, 'c')
  end
end

local applied = 0
local pos = 6
for k = 1, hashes do
  local key = KEYS[k]
  local meta = ARGV[pos]
  local generation = ARGV[pos + 1]
  local n = tonumber(ARGV[pos + 2])
  pos = pos + 3
  local write = true
  if meta ~= '' and (redis.call('HGET', key, 'g') or '') ~= generation then
    write = false
  end
  if write then
    redis.call('HDEL', key, 'j', 's')  -- READ_SCRIPT's copy and its stamp: rebuilt by the next read
    for i = 1, n do
      local code = ARGV[pos]
      local version = tonumber(ARGV[pos + 1])
      local mode = ARGV[pos + 3]
      local holds = ARGV[pos + 4]
      local current = tonumber(redis.call('HGET', key, 'v:' .. code) or '-1')
      if mode == '=' then
        if version >= current then
          redis.call('HSET', key, 'v:' .. code, version, 'a:' .. code, ARGV[pos + 2],
                     'h:' .. code, holds, 'hv:' .. code, version)
          applied = applied + 1
        end
      else
        if version > current then
          redis.call('HSET', key, 'v:' .. code, version, 'a:' .. code, ARGV[pos + 2])
          applied = applied + 1
        end
        local stored = redis.call('HGET', key, 'h:' .. code)
        local base = tonumber(redis.call('HGET', key, 'hv:' .. code) or '-1')
        if not stored or base < 0 then
          redis.call('HSET', key, 'h:' .. code, '?')
        elseif version > base and stored ~= '?' then
          local new_holds = '?'
          if mode == '+' then new_holds = apply_holds(stored, holds) end
          redis.call('HSET', key, 'h:' .. code, new_holds)
        end
      end
      pos = pos + 5
    end
    if meta ~= '' then
      redis.call('HSET', key, 'meta', meta)
      composition(key, meta)
      redis.call('EXPIRE', key, fill_ttl(key))
    elseif redis.call('TTL', key) == -1 then
      redis.call('EXPIRE', key, ttl)
    end
  else
    pos = pos + 5 * n
  end
end
for k = hashes + 1, #KEYS do
  redis.call('SET', KEYS[k], '1', 'EX', ARGV[3])
end
return applied
"""

# KEYS[1]..: entries to invalidate; ARGV[1]: TTL. Drops `meta` (the entry is no
# longer readable) and bumps the generation, which a fill that read the database
# before this ran can no longer match. The row fields stay (versioned state).
INVALIDATE_SCRIPT = """
for k = 1, #KEYS do
  redis.call('HDEL', KEYS[k], 'meta', 'j', 's')
  redis.call('HINCRBY', KEYS[k], 'g', 1)
  if redis.call('TTL', KEYS[k]) == -1 then
    redis.call('EXPIRE', KEYS[k], ARGV[1])
  end
end
return #KEYS
"""

# KEYS: the hashes to read, then (ARGV[1] == '1') the flag key; ARGV[2]: the
# key prefix of entries (`_key("")`); ARGV[3]: the store-wide stamp sequence's
# key (`_stamp_key()`); ARGV[4] == '1': stamped mode, with ARGV[5..] one token
# per hash read ('' = none). Returns, per hash, its HGETALL joined into one
# string (field NUL value NUL field ...; '' for an absent hash) and, for a
# bundle's entry (one with a `c` field, see APPLY_SCRIPT), SOH and each
# component's entry the same way, in the order of `c`; then EXISTS of the flag.
# So each requested SKU comes back as ONE string, a bundle's with the entries
# its answer is derived from, read atomically with it (never stale relative to
# them, and no extra round trip on a hit): the client memoises answers per
# string (issue #16, item 5; `selectors.availability_for_skus`). Each hash is
# read once per call however many bundles share it. NUL, SOH and STX never
# occur in a field (JSON escapes them; codes, numbers, hold strings and SKUs
# are printable). The component keys (and the sequence key) are not in KEYS:
# on Redis Cluster they would have to share the bundle's slot
# (docs/ARCHITECTURE.md, read model). Each entry's text is cached in its own
# field `j` by the first read after a write (every write drops it), so reading
# an unchanged entry is one HMGET: the script writes, but only that copy of
# what it read, and its stamp.
#
# Stamps ("unchanged" protocol, issue #16 item 5): whenever the script stores
# `j` it stores with it, in `s`, a stamp drawn from a store-wide sequence
# ('<epoch>.<n>'; a sequence found missing restarts with a new epoch, the
# instant it restarted, so no stamp is ever handed out twice); every write
# drops `s` with `j`. So a stamp names one content of one entry: equal stamps
# mean the same text, and an entry that expired and was refilled has a new
# stamp even if its text is the same bytes. In stamped mode the reply for a
# hash is '=' when every stamp the client sent for it (below, at `unchanged`)
# is current (the client holds what it derived from exactly these entries; only
# the stamps are read, one HGET per entry, and nothing is sent), else the
# string's token (its entries' stamps joined by ';', a bundle's own first, then
# its components' in the order of `c`), STX and the string.
READ_SCRIPT = """
local n = #KEYS
if ARGV[1] == '1' then n = n - 1 end
local prefix = ARGV[2]
local sequence = ARGV[3]
local stamped = ARGV[4] == '1'
local comps, texts, stamps = {}, {}, {}

-- A fresh stamp: '<epoch>.<n>', n the next value of the store-wide sequence
-- (a hash: `n` the counter, `e` the epoch, the instant by Redis' clock in
-- microseconds at which the counter started: a sequence lost and restarted has
-- a new epoch, so no stamp is ever handed out twice).
local epoch = nil
local function new_stamp()
  local n = redis.call('HINCRBY', sequence, 'n', 1)
  if n == 1 then
    local t = redis.call('TIME')
    epoch = t[1] .. string.format('%06d', tonumber(t[2]))
    redis.call('HSET', sequence, 'e', epoch)
  elseif epoch == nil then
    epoch = redis.call('HGET', sequence, 'e') or '?'
  end
  return epoch .. '.' .. string.format('%d', n)
end

-- An entry's stamp (false: none: absent, or written since its text was kept).
local function stamp(key)
  local s = stamps[key]
  if s == nil then
    s = redis.call('HGET', key, 's')
    stamps[key] = s
  end
  return s
end

-- An entry's joined text is kept in its field `j` with its stamp in `s` (both
-- dropped by every write of the entry, APPLY_SCRIPT and INVALIDATE_SCRIPT): an
-- unchanged entry costs one HMGET instead of an HGETALL and a join. Neither is
-- ever part of the text.
local function read(key)
  local text = texts[key]
  if text == nil then
    local got = redis.call('HMGET', key, 'j', 's', 'c')
    text = got[1]
    local s, c = got[2], got[3]
    if not text then
      if s then redis.call('HDEL', key, 's') end
      local flat = redis.call('HGETALL', key)
      text = table.concat(flat, '\\0')
      s = false
      if #flat > 0 then
        s = new_stamp()
        redis.call('HSET', key, 'j', text, 's', s)
      end
    elseif not s then
      s = new_stamp()
      redis.call('HSET', key, 's', s)
    end
    texts[key] = text
    stamps[key] = s
    comps[key] = c
  end
  return text
end

-- The tokens, one per hash from ARGV[5] ('' for none): the stamp the client
-- holds for the hash's entry and, for a bundle, then per component (in the
-- order of `c`) its entry key and stamp, separated by spaces. Equal stamps for
-- the bundle's entry mean the same content, `c` included, so the component keys
-- the client names are the ones its string holds. Whether every stamp of
-- `token` is current:
-- (Positions and plain `find`s rather than a pattern: a bundle's check makes
-- one new string, its component key, per component.)
local find, sub = string.find, string.sub
local function unchanged(key, token)
  local space = find(token, ' ', 1, true)
  if not space then return stamp(key) == token end
  local s = stamp(key)
  if not s or #s ~= space - 1 or find(token, s, 1, true) ~= 1 then return false end
  local at = space + 1
  while true do
    local gap = find(token, ' ', at, true)  -- after the component's key
    if not gap then return false end
    local part = stamp(sub(token, at, gap - 1))
    local stop = find(token, ' ', gap + 1, true) or (#token + 1)  -- after its stamp
    if not part or #part ~= stop - gap - 1 or find(token, part, gap + 1, true) ~= gap + 1 then
      return false
    end
    if stop > #token then return true end
    at = stop + 1
  end
end

local out = {}
for i = 1, n do
  local key = KEYS[i]
  local token = ''
  if stamped then token = ARGV[4 + i] end
  if token ~= '' and unchanged(key, token) then
    out[i] = '='
  else
    local text = read(key)
    local c = comps[key]
    if c then
      local parts, marks = {text}, {stamps[key] or ''}
      for sku in string.gmatch(c, '[^,]+') do
        parts[#parts + 1] = read(prefix .. sku)
        marks[#marks + 1] = stamps[prefix .. sku] or ''
      end
      text = table.concat(parts, '\\1')
      if stamped then text = table.concat(marks, ';') .. '\\2' .. text end
    elseif stamped then
      text = (stamps[key] or '') .. '\\2' .. text
    end
    out[i] = text
  end
end
if ARGV[1] == '1' then out[n + 1] = redis.call('EXISTS', KEYS[n + 1]) end
return out
"""


@dataclass
class StockSnapshot:
    """Committed availability of one SKU, per warehouse code.

    `warehouses` is what can be sold now: on hand - reserved + what holds past
    their `expires_at` still reserve (they count nowhere), as of `at`; `base`
    (on hand - reserved) and `holds` are what the read model stores.
    """

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
    base: dict[str, int] = field(default_factory=dict)
    holds: dict[str, str] = field(default_factory=dict)
    generation: str = ""
    # A bundle (issue #16): its composition [(component sku, quantity per bundle)]
    # (None for a plain SKU), stored in the entry's meta; it has no rows of its
    # own. `parts` are the components' snapshots read with it (in the same string,
    # READ_SCRIPT, on a hit): its availability is derived from them at read time,
    # never stored.
    components: list[tuple[str, int]] | None = None
    parts: dict[str, StockSnapshot] = field(default_factory=dict)
    # Filled from the streaming replica (DATABASE_REPLICA_URL): fine for reads,
    # never trusted by the sold-out gate (inventory_site/db_router.py).
    from_replica: bool = False
    # Read from the cache with no expiring holds: the bytes read that this
    # snapshot's figures (a bundle's: with its parts') are a pure function of, so
    # a reader may memoise what it derives under them
    # (`selectors.availability_for_skus`). None otherwise (database loads, rows
    # with holds: their figures depend on the instant; a bundle with a part not
    # read with it or not readable).
    content: bytes | None = None

    def total_available(self, active_codes: Iterable[str] | None = None) -> int:
        if active_codes is None:
            return sum(self.warehouses.values())
        active = set(active_codes)
        return sum(v for code, v in self.warehouses.items() if code in active)

    def settle(self, now_us: int) -> bool:
        """Compute `warehouses` for the instant `now_us`; False if some row's
        holds are not known well enough for it (the entry is then a miss)."""
        warehouses = {}
        for code, base in self.base.items():
            lapsed = lapsed_units(self.holds.get(code, "?"), now_us)
            if lapsed is None:
                return False
            warehouses[code] = base + lapsed
        self.warehouses = warehouses
        return True


def _ttl() -> int:
    return int(settings.STOCKROOM_AVAILABILITY_TTL)


def _fill_ttl() -> float:
    """A fill's TTL in the in-process store: as APPLY_SCRIPT's `fill_ttl`, the
    TTL less up to a fifth of it."""
    ttl = _ttl()
    return ttl - random.uniform(0, ttl / 5)


def _hold_cap() -> int:
    return int(settings.STOCKROOM_AVAILABILITY_HOLDS)


def _key(sku: str) -> str:
    prefix = settings.STOCKROOM_AVAILABILITY_KEY_PREFIX
    return f"{prefix}:avail:{KEY_VERSION}:{sku}"


def _stamp_key() -> str:
    """The store-wide stamp sequence READ_SCRIPT draws from (a hash: counter
    `n`, epoch `e`; not an entry key: no SKU key has this shape)."""
    prefix = settings.STOCKROOM_AVAILABILITY_KEY_PREFIX
    return f"{prefix}:avail-stamps:{KEY_VERSION}"


# --------------------------------------------------------------------------
# Hold strings (see the module doc): the same rules as the Lua script
# --------------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(instant: datetime) -> int:
    """An aware datetime as whole microseconds since the epoch (exact)."""
    return (instant - _EPOCH) // timedelta(microseconds=1)


def now_micros() -> int:
    from . import clock

    return micros(clock.now())


def lapsed_units(holds: str, now_us: int) -> int | None:
    """Units of the holds in `holds` whose expiry is at or before `now_us`;
    None if the string does not know (unknown, or now is past its horizon)."""
    if holds == "":
        return 0
    if holds == "?":
        return None
    upto, floor, entries = holds.split("|")
    if upto and now_us >= int(upto):
        return None
    total = 0
    if floor:
        floor_t, floor_q = floor.split(":")
        if now_us < int(floor_t) or int(floor_q) < 0:
            return None  # a reader behind the writer's clock, or a change in flight
        total += int(floor_q)
    if entries:
        for item in entries.split(","):
            t, q = item.split(":")
            if int(t) > now_us:
                break
            if int(q) < 0:
                return None  # a release whose reservation's write-through is in flight
            total += int(q)
    return total


def _serialise(
    upto: int | None,
    floor_t: int | None,
    floor_q: int,
    entries: dict[int, int],
    now_us: int,
    cap: int,
) -> str:
    """Merge entries at or before `now_us` into the floor, keep at most `cap`
    later instants (the first one dropped becomes the horizon), and format."""
    keys = []
    for t, q in entries.items():
        if q != 0:
            if t <= now_us:
                floor_q += q
                floor_t = t if floor_t is None or t > floor_t else floor_t
            else:
                keys.append(t)
    keys.sort()
    while len(keys) > cap:
        upto = keys.pop()
    if floor_q == 0:
        floor_t = None
    if upto is None and floor_t is None and not keys:
        return ""
    return "|".join(
        [
            "" if upto is None else str(upto),
            "" if floor_t is None else f"{floor_t}:{floor_q}",
            ",".join(f"{t}:{entries[t]}" for t in keys),
        ]
    )


def hold_string(holds: Iterable[tuple[int, int]], now_us: int, cap: int) -> str:
    """The stored form of a row's holds, from (expiry in µs, units) pairs: those
    at or before `now_us` merged into one, at most `cap` later instants kept
    exactly (the next one becomes the horizon)."""
    entries: dict[int, int] = {}
    for t, q in holds:
        entries[t] = entries.get(t, 0) + q
    return _serialise(None, None, 0, entries, now_us, cap)


def apply_hold_delta(holds: str, delta: str, now_us: int, cap: int) -> str:
    """The Lua script's `apply_holds`, in Python (the in-process store; a test
    checks both give the same strings). Deltas add up in any order: a release
    that arrives before its reservation leaves a negative count for a moment,
    which readers treat as unknown."""
    if holds == "?":
        return "?"
    upto, floor_t, floor_q = None, None, 0
    entries: dict[int, int] = {}
    if holds:
        u, f, listed = holds.split("|")
        upto = int(u) if u else None
        if f:
            a, b = f.split(":")
            floor_t, floor_q = int(a), int(b)
        for item in filter(None, listed.split(",")):
            a, b = item.split(":")
            entries[int(a)] = entries.get(int(a), 0) + int(b)
    for item in filter(None, delta.split(",")):
        a, b = item.split(":")
        t, dq = int(a), int(b)
        if floor_t is not None and t <= floor_t:
            floor_q += dq
        elif upto is None or t < upto:
            entries[t] = entries.get(t, 0) + dq
    return _serialise(upto, floor_t, floor_q, entries, now_us, cap)


def _delta_string(holds: Iterable[tuple[Any, int]]) -> str:
    out = []
    for when, qty in holds:
        t = micros(when) if isinstance(when, datetime) else int(when)
        out.append(f"{t}:{int(qty)}")
    return ",".join(out)


# --------------------------------------------------------------------------
# Stores: Redis (Lua) and an in-process fallback with the same semantics
# --------------------------------------------------------------------------

# A write: (key, meta or '', generation read or '', fields), fields being
# (code, version, available, mode, holds) as the script takes.
Write = tuple[str, str, str, list]


class _RedisStore:
    def __init__(self) -> None:
        from django_redis import get_redis_connection

        self.client = get_redis_connection("default")
        self.script = self.client.register_script(APPLY_SCRIPT)
        self.invalidate_script = self.client.register_script(INVALIDATE_SCRIPT)
        self.read_script = self.client.register_script(READ_SCRIPT)

    def read(
        self,
        keys: Sequence[str],
        flag: str | None = None,
        tokens: Sequence[str] | None = None,
    ) -> tuple[list[bytes], bool]:
        """Every key's entry as one flat string, a bundle's followed by its
        components' (READ_SCRIPT), and whether `flag` exists, in one round trip.
        With `tokens` (one per key, `Read.token`; '' for none): stamped replies,
        b'=' for a key whose stamps are all current, else its token, STX and its
        string."""
        args = ["1" if flag else "0", _key(""), _stamp_key(), "0"]
        if tokens is not None:
            args[3] = "1"
            args += tokens
        raw = self.read_script(keys=[*keys, flag] if flag else list(keys), args=args)
        return raw[: len(keys)], bool(flag and raw[-1])

    def apply(self, writes: Sequence[Write], remember: Sequence[str] = ()) -> int:
        """Apply versioned writes and set order-memory keys, in one call."""
        keys: list[str] = []
        args: list[Any] = [_ttl(), len(writes), ORDER_MEMORY_SECONDS, now_micros(), _hold_cap()]
        for key, meta, generation, fields in writes:
            keys.append(key)
            args += [meta, generation, len(fields)]
            for item in fields:
                args += list(item)
        return int(self.script(keys=keys + list(remember), args=args))

    def invalidate(self, keys: Sequence[str]) -> None:
        if keys:
            self.invalidate_script(keys=list(keys), args=[_ttl()])


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

    def _flat(self, key: str) -> str:
        return "\0".join(f"{k}\0{v}" for k, v in (self._get(key) or {}).items() if k != "s")

    def _stamp(self, key: str) -> str:
        """The entry's stamp (READ_SCRIPT's `s`), given on first read after a
        write from the process-wide sequence ('' for an absent entry)."""
        entry = self._get(key)
        if not entry:
            return ""
        if "s" not in entry:
            entry["s"] = str(next(_LOCAL_STAMPS))
        return entry["s"]

    def _unchanged(self, key: str, token: str) -> bool:
        """READ_SCRIPT's `unchanged`: every stamp of `token` is current."""
        words = token.split()
        if not words or self._stamp(key) != words[0]:
            return False
        return all(self._stamp(k) == st for k, st in zip(words[1::2], words[2::2], strict=False))

    def read(
        self,
        keys: Sequence[str],
        flag: str | None = None,
        tokens: Sequence[str] | None = None,
    ) -> tuple[list[bytes], bool]:
        """The same strings (and, with `tokens`, the same stamped replies) as the
        Redis store's READ_SCRIPT."""
        prefix = _key("")
        with self.lock:
            entries = []
            for i, key in enumerate(keys):
                if tokens is not None and self._unchanged(key, tokens[i]):
                    entries.append(b"=")
                    continue
                names = [key]
                composition = (self._get(key) or {}).get("c")
                if composition is not None:
                    names += [prefix + sku for sku in composition.split(",") if sku]
                text = "\1".join(self._flat(name) for name in names)
                if tokens is not None:
                    text = ";".join(self._stamp(name) for name in names) + "\2" + text
                entries.append(text.encode())
            return entries, bool(flag and self._get(flag) is not None)

    def apply(self, writes: Sequence[Write], remember: Sequence[str] = ()) -> int:
        applied = 0
        now_us, cap = now_micros(), _hold_cap()
        with self.lock:
            for key in remember:
                self.data[key] = (time.monotonic() + ORDER_MEMORY_SECONDS, {})
            for key, meta, generation, fields in writes:
                entry = self._get(key)
                if meta and (entry or {}).get("g", "") != generation:
                    continue
                expires = self.data[key][0] if entry is not None else None
                entry = entry if entry is not None else {}
                entry.pop("s", None)  # READ_SCRIPT's `s`: every write drops it
                for code, version, available, mode, holds in fields:
                    current = int(entry.get(f"v:{code}", -1))
                    if mode == "=":
                        if int(version) >= current:
                            entry[f"v:{code}"] = str(version)
                            entry[f"a:{code}"] = str(available)
                            entry[f"h:{code}"] = holds
                            entry[f"hv:{code}"] = str(version)
                            applied += 1
                        continue
                    if int(version) > current:
                        entry[f"v:{code}"] = str(version)
                        entry[f"a:{code}"] = str(available)
                        applied += 1
                    stored = entry.get(f"h:{code}")
                    base = int(entry.get(f"hv:{code}", -1))
                    if stored is None or base < 0:
                        entry[f"h:{code}"] = "?"
                    elif int(version) > base and stored != "?":
                        entry[f"h:{code}"] = (
                            apply_hold_delta(stored, holds, now_us, cap) if mode == "+" else "?"
                        )
                if meta:
                    expires = time.monotonic() + _fill_ttl()
                elif expires is None:
                    expires = time.monotonic() + _ttl()
                if meta:
                    entry["meta"] = meta
                    _set_composition(entry, meta)
                self.data[key] = (expires, entry)
        return applied

    def invalidate(self, keys: Sequence[str]) -> None:
        with self.lock:
            for key in keys:
                entry = self._get(key)
                expires = self.data[key][0] if entry is not None else None
                entry = entry if entry is not None else {}
                entry.pop("meta", None)
                entry.pop("s", None)
                entry["g"] = str(int(entry.get("g", 0)) + 1)
                self.data[key] = (expires or time.monotonic() + _ttl(), entry)


def _set_composition(entry: dict[str, str], meta: str) -> None:
    """APPLY_SCRIPT's `composition`: a bundle's component SKUs in `c`."""
    components = json.loads(meta).get("components")
    if components is None:
        entry.pop("c", None)
    else:
        entry["c"] = ",".join(sku for sku, _ in components)


# The in-process store's stamp sequence: one per process (every `_LocalStore`
# draws from it), so a stamp is never handed out twice.
_LOCAL_STAMPS = itertools.count(1)

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
    """Forget the Redis client (after settings change in tests), the writes
    queued for it and what this process remembers of the read model."""
    global _redis_store
    _WRITE_BEHIND.discard()
    _redis_store = None
    _local_store.data.clear()
    _DECODED.clear()
    _WATCHED.clear()
    _BUNDLE_PARTS.clear()


# --------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------


class _Decoded:
    """One entry's content, decoded once per distinct content (`_DECODED`).

    The reader gets a fresh `StockSnapshot` from it per read (`snapshot`), whose
    dicts are shared with this template: snapshots from the read model are
    read-only. `timeless`: every row's holds are empty, so what is sellable does
    not depend on the instant and is computed here once. `appended`: for a
    bundle's entry, the component SKUs whose entries READ_SCRIPT appended to it
    (its `c` field), in that order."""

    __slots__ = ("appended", "generation", "low", "template", "timeless")

    def __init__(self, raw: bytes) -> None:
        items = raw.decode().split("\0") if raw else []
        entry = dict(zip(items[::2], items[1::2], strict=True))
        self.generation = entry.get("g", "")
        self.appended = tuple(sku for sku in entry.get("c", "").split(",") if sku)
        self.template: dict[str, Any] | None = None
        self.timeless = False
        self.low = False
        meta = entry.get("meta")
        if not meta:
            return  # absent or partial (write-throughs only): not readable
        info = json.loads(meta)
        base, versions, holds = {}, {}, {}
        for name, value in entry.items():
            if name.startswith("a:"):
                base[name[2:]] = int(value)
            elif name.startswith("v:"):
                versions[name[2:]] = int(value)
            elif name.startswith("h:"):
                holds[name[2:]] = value
        components = info.get("components")
        if components is not None and tuple(c for c, _ in components) != self.appended:
            # Filled before entries kept `c` (or `c` disagrees with meta, which
            # one script writes together): read as a miss, and the refill writes it.
            return
        self.template = {
            "product_id": info["product_id"],
            "stock_policy": info["stock_policy"],
            "allowance": int(info["allowance"]),
            "warehouses": {},
            "versions": versions,
            "thresholds": {code: int(t) for code, t in info.get("thresholds", {}).items()},
            "ships_in_days": info.get("ships_in_days"),
            "base": base,
            "holds": holds,
            "generation": self.generation,
            "components": None if components is None else [(c, int(q)) for c, q in components],
            "from_replica": bool(info.get("replica")),
        }
        self.timeless = all(holds.get(code) == "" for code in base)
        # On the gate's watch list when read (sellable >= a: lapsed holds only add).
        self.low = components is None and _low(base.values())
        if self.timeless:
            self.template["warehouses"] = dict(base)

    def snapshot(self, sku: str, now_us: int, content: bytes) -> StockSnapshot | None:
        """A snapshot as of `now_us`, or None if unreadable or unsettled then.
        `content`: the bytes this entry was decoded from (kept if timeless)."""
        if self.template is None:
            return None
        snapshot = StockSnapshot.__new__(StockSnapshot)
        snapshot.__dict__.update(self.template)
        snapshot.sku = sku
        snapshot.parts = {}
        if self.timeless:
            snapshot.content = content
        elif not snapshot.settle(now_us):
            STATS["hold_misses"] += 1
            return None  # a row's holds are unknown or past their horizon: a miss
        return snapshot


# Raw entry content -> its decoding. Keyed by the whole content read in this
# request, so it can never answer with anything but what was just read; it only
# spares decoding an entry that has not changed since it was last read.
_DECODED: dict[bytes, _Decoded] = {}
_DECODED_MAX = 50_000


def _decode_entry(raw: bytes) -> _Decoded:
    decoded = _DECODED.get(raw)
    if decoded is None:
        decoded = _Decoded(raw)
        if len(_DECODED) >= _DECODED_MAX:
            _DECODED.clear()
        _DECODED[raw] = decoded
    return decoded


# Every row of the SKUs with its open holds that have an expiry, grouped by
# instant, in one statement (one snapshot: the holds belong to the version read).
_LOAD_SQL = """
    SELECT p.sku, p.id, p.stock_policy, p.backorder_limit, w.code, i.available, i.version,
           i.reorder_threshold, h.holds, p.is_bundle
    FROM inventory_product p
    LEFT JOIN inventory_inventory i ON i.product_id = p.id
    LEFT JOIN warehouses_warehouse w ON w.id = i.warehouse_id
    LEFT JOIN LATERAL (
        SELECT string_agg(x.t::text || ':' || x.q::text, ',' ORDER BY x.t) AS holds
        FROM (
            SELECT (extract(epoch FROM r.expires_at) * 1000000)::bigint AS t,
                   SUM(rl.quantity - rl.quantity_fulfilled - rl.quantity_released) AS q
            FROM inventory_reservationline rl
            JOIN inventory_reservation r ON r.id = rl.reservation_id
            WHERE rl.inventory_id = i.id AND rl.status = 'active'
              AND r.expires_at IS NOT NULL
            GROUP BY 1
        ) x
    ) h ON i.id IS NOT NULL
    WHERE p.sku = ANY(%s::text[])
"""


# The embedded default (SQLite) has no LATERAL: the same rows, and each row's
# holds read in a second query inside the same transaction.
_LOAD_SQL_PORTABLE = """
    SELECT p.sku, p.id, p.stock_policy, p.backorder_limit, w.code, i.available, i.version,
           i.reorder_threshold, i.id, p.is_bundle
    FROM inventory_product p
    LEFT JOIN inventory_inventory i ON i.product_id = p.id
    LEFT JOIN warehouses_warehouse w ON w.id = i.warehouse_id
    WHERE p.sku IN ({placeholders})
"""


def _load_rows_portable(alias: str, skus: Sequence[str]) -> list[tuple]:
    from .models import ReservationLine  # models import this module's callers (a cycle)

    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        cursor.execute(
            _LOAD_SQL_PORTABLE.format(placeholders=", ".join(["%s"] * len(skus))), list(skus)
        )
        found = cursor.fetchall()
        held: dict[Any, dict[int, int]] = {}
        for inventory_id, expires_at, units in (
            ReservationLine.objects.using(alias)
            .filter(
                inventory_id__in=[row[8] for row in found if row[8] is not None],
                status="active",
                reservation__expires_at__isnull=False,
            )
            .values_list("inventory_id", "reservation__expires_at")
            .annotate(q=Sum(F("quantity") - F("quantity_fulfilled") - F("quantity_released")))
        ):
            instant = (expires_at - epoch) // timedelta(microseconds=1)
            by_instant = held.setdefault(inventory_id, {})
            by_instant[instant] = by_instant.get(instant, 0) + units
    return [
        (
            *row[:8],
            ",".join(f"{t}:{q}" for t, q in sorted(held[row[8]].items()))
            if row[8] in held
            else None,
            row[9],
        )
        for row in found
    ]


def load_from_database(skus: Sequence[str]) -> dict[str, StockSnapshot]:
    """One indexed query for every row of the given SKUs (the committed state),
    with each row's expiring holds.

    Inside `inventory_site.db_router.replica_reads()` it reads the replica (when
    fresh enough); versions keep an older replica snapshot from overwriting newer
    cached values, and the sold-out gate ignores entries filled from it.
    """
    from inventory_site.db_router import read_alias

    from .models import policy_allowance

    if not skus:
        return {}
    alias = read_alias()
    if connections[alias].vendor == "postgresql":
        # One text for any number of SKUs, prepared once per connection: planning
        # the join was ~0.6 ms of a miss's ~0.8 ms in PostgreSQL (docs/PERFORMANCE.md).
        with prepared_cursor(connections[alias]) as cursor:
            cursor.execute(_LOAD_SQL, [list(skus)])
            rows = cursor.fetchall()
    else:
        rows = _load_rows_portable(alias, skus)
    snapshots: dict[str, StockSnapshot] = {}
    now_us, cap = now_micros(), _hold_cap()
    bundles = []
    for sku, product_id, policy, limit, code, available, version, threshold, holds, bundle in rows:
        snap = snapshots.get(sku)
        if snap is None:
            snap = snapshots[sku] = StockSnapshot(
                sku=sku,
                product_id=str(product_id),
                stock_policy=policy,
                allowance=policy_allowance(policy, int(limit)),
                from_replica=alias == "replica",
            )
            if bundle:
                bundles.append(snap)
        if code is not None:
            pairs = []
            for item in filter(None, (holds or "").split(",")):
                t, q = item.split(":")
                pairs.append((int(t), int(q)))
            snap.base[code] = int(available)
            snap.holds[code] = hold_string(pairs, now_us, cap)
            snap.versions[code] = int(version)
            snap.thresholds[code] = int(threshold)
    bundle_skus = {snap.sku for snap in bundles}
    for snap in snapshots.values():
        snap.settle(now_us)  # always known: a fill's horizon lies after now
        if snap.sku not in bundle_skus and _low(snap.warehouses.values()):
            _watch(snap.sku)  # the gate's watch list
    if bundles:
        _load_compositions(alias, bundles)
    # "Ships in N days" matters only for SKUs that are low or out: look it up
    # (two queries, whatever the count) for those, at fill time.
    from .selectors import low_stock_level, ships_in_days_for_products

    low = [
        snap
        for snap in snapshots.values()
        if snap.components is None
        and sum(max(v, 0) for v in snap.warehouses.values())
        <= low_stock_level(snap.thresholds.values())
    ]
    if low:
        etas = ships_in_days_for_products([uuid.UUID(snap.product_id) for snap in low])
        for snap in low:
            snap.ships_in_days = etas.get(uuid.UUID(snap.product_id))
    return snapshots


def _load_compositions(alias: str, bundles: Sequence[StockSnapshot]) -> None:
    """Set each bundle snapshot's composition (one query, in component SKU order)."""
    from .models import BundleComponent  # models import this module's callers (a cycle)

    by_sku = {snap.sku: snap for snap in bundles}
    for snap in bundles:
        snap.components = []
    for bundle, component, quantity in (
        BundleComponent.objects.using(alias)
        .filter(bundle__sku__in=list(by_sku))
        .order_by("bundle__sku", "component__sku")
        .values_list("bundle__sku", "component__sku", "quantity")
    ):
        by_sku[bundle].components.append((component, int(quantity)))


def _fill(snapshots: Iterable[StockSnapshot], generations: dict[str, str] | None = None) -> None:
    """Write database snapshots. `generations`: per SKU, the entry's generation
    read before the database was; a fill whose generation moved writes nothing."""
    generations = generations or {}
    writes = []
    for snap in snapshots:
        info = {
            "product_id": snap.product_id,
            "stock_policy": snap.stock_policy,
            "allowance": snap.allowance,
            "thresholds": snap.thresholds,
            "ships_in_days": snap.ships_in_days,
        }
        if snap.components is not None:
            info["components"] = snap.components
        if snap.from_replica:
            info["replica"] = True
        meta = json.dumps(info)
        fields = [
            (code, snap.versions[code], snap.base[code], "=", snap.holds[code])
            for code in snap.base
        ]
        writes.append((_key(snap.sku), meta, generations.get(snap.sku, ""), fields))
    if not writes:
        return
    try:
        _store().apply(writes)
        STATS["fills"] += len(writes)
    except Exception:
        STATS["errors"] += 1
        logger.warning("availability cache fill failed", exc_info=True)


def read_cached(skus: Sequence[str]) -> dict[str, StockSnapshot]:
    """Complete cached entries only, in one round trip; {} if the cache is down.
    A bundle's entry comes with the components' entries read with it (`parts`)."""
    found, _, _, _ = _read(skus)
    return {sku: found[sku] for sku in skus if sku in found}


def _attach_parts(skus: Iterable[str], found: dict[str, StockSnapshot]) -> None:
    """Give bundles loaded from the database (or whose component entries were not
    readable) the components' snapshots found or loaded since."""
    for sku in skus:
        snap = found.get(sku)
        if snap is not None and snap.components is not None:
            for component, _ in snap.components:
                if component not in snap.parts and component in found:
                    snap.parts[component] = found[component]


def _components_missing(skus: Iterable[str], found: dict[str, StockSnapshot]) -> list[str]:
    """Component SKUs of the found bundles among `skus` that are not found."""
    out: dict[str, None] = {}
    for sku in skus:
        snap = found.get(sku)
        if snap is not None and snap.components is not None:
            for component, _ in snap.components:
                if component not in found:
                    out[component] = None
    return list(out)


def _read_raw(
    skus: Sequence[str], flag: str | None = None, tokens: Sequence[str] | None = None
) -> tuple[list[bytes], bool]:
    """READ_SCRIPT's strings for distinct `skus` (stamped replies with
    `tokens`) and whether `flag` exists: one round trip. Raises if the cache is
    down."""
    prefix = _key("")
    flush_writes()  # this process's queued reservations first: it reads its own writes
    entries, flagged = _store().read([prefix + sku for sku in skus], flag, tokens)
    STATS["round_trips"] += 1
    return entries, flagged


def _read(
    skus: Sequence[str], flag: str | None = None
) -> tuple[dict[str, StockSnapshot], bool, dict[str, str] | None, list[str]]:
    """Readable entries (the SKUs' and their components'), whether `flag`
    exists, every entry's generation (None when the cache is down: nothing may be
    filled then), and the SKUs whose entry is complete but does not know some
    row's holds well enough now."""
    skus = list(dict.fromkeys(skus))
    try:
        entries, flagged = _read_raw(skus, flag)
        found, generations, unsettled = _parse_entries(skus, entries)
    except Exception:
        STATS["errors"] += 1
        logger.warning("availability cache read failed", exc_info=True)
        return {}, True, None, []
    return found, flagged, generations, unsettled


def _parse_entries(
    skus: Sequence[str], entries: Sequence[bytes]
) -> tuple[dict[str, StockSnapshot], dict[str, str], list[str]]:
    """Snapshots of what READ_SCRIPT returned for `skus`: each entry and, for a
    bundle, the components' entries read with it (in `found` too, and as its
    `parts`); each entry's generation; the SKUs whose entry is complete but does
    not know some row's holds well enough now. A snapshot's `content` is the
    string read for it when every entry in it is readable and timeless (a
    bundle's answer then depends on nothing else)."""
    now_us = now_micros()
    found: dict[str, StockSnapshot] = {}
    generations: dict[str, str] = {}
    unsettled: dict[str, None] = {}

    def take(sku: str, raw: bytes) -> tuple[_Decoded, StockSnapshot | None]:
        decoded = _decode_entry(raw)
        generations[sku] = decoded.generation
        if decoded.low:
            _watch(sku)
        if decoded.appended:
            _remember_parts(sku, decoded.appended)
        snap = decoded.snapshot(sku, now_us, raw)
        if snap is not None:
            found[sku] = snap
        elif decoded.template is not None:
            unsettled[sku] = None
        return decoded, snap

    for sku, raw in zip(skus, entries, strict=True):
        if b"\1" not in raw:
            take(sku, raw)
            continue
        head, *tails = raw.split(b"\1")
        decoded, snap = take(sku, head)
        parts = {}
        for component, tail in zip(decoded.appended, tails, strict=True):
            _, part = take(component, tail)
            if part is not None:
                parts[component] = part
        if snap is not None:
            snap.parts = parts
            whole = len(parts) == len(tails) and all(
                p.content is not None for p in (snap, *parts.values())
            )
            snap.content = raw if whole else None
    return found, generations, list(unsettled)


class Read:
    """One read of the read model (one round trip) for distinct SKUs:
    `contents[i]` is the string READ_SCRIPT returned for `skus[i]` (a bundle's
    with its components' entries), all None when the cache is down.

    `known` (optional): per SKU, the token (`token`) of the string from
    which the caller derived an answer it still holds. The script answers
    "unchanged" for a SKU whose stamps are all still current: `contents[i]` is
    None and the caller answers from what it holds (derived from exactly the
    entries this read saw). For the other SKUs, `token(sku, snapshot)` is what a
    caller memoising what it derived from that snapshot keeps and sends next
    time.
    """

    __slots__ = ("contents", "skus", "stamps")

    def __init__(self, skus: Sequence[str], known: dict[str, str] | None = None) -> None:
        self.skus = list(dict.fromkeys(skus))
        self.contents: list[bytes | None] | None = None
        self.stamps: dict[str, str] = {}  # per SKU sent in full, its string's token
        try:
            if known is None:
                self.contents = _read_raw(self.skus)[0]
            else:
                replies = _read_raw(self.skus, tokens=[known.get(sku, "") for sku in self.skus])[0]
                self.contents = self._unstamp(replies)
        except Exception:
            STATS["errors"] += 1
            logger.warning("availability cache read failed", exc_info=True)

    def _unstamp(self, replies: Sequence[bytes]) -> list[bytes | None]:
        contents: list[bytes | None] = []
        for sku, reply in zip(self.skus, replies, strict=True):
            if reply == b"=":
                contents.append(None)
                continue
            token, _, content = reply.partition(b"\2")
            self.stamps[sku] = token.decode()
            contents.append(content)
        return contents

    def token(self, sku: str, snapshot: StockSnapshot) -> str | None:
        """The token to send for `sku` next time (READ_SCRIPT: the stamp of its
        own entry, then per component its entry key and stamp, separated by
        spaces), from the stamps read with its string and the composition of
        the `snapshot` decoded from it; None if the string had an unstamped
        (absent) entry."""
        token = self.stamps.get(sku)
        if not token:
            return None
        if snapshot.components is None:
            return None if ";" in token else token  # (a plain SKU: its stamp alone)
        marks = token.split(";")
        parts = [c for c, _ in snapshot.components]
        if len(marks) != 1 + len(parts) or not all(marks):
            return None
        prefix = _key("")
        words = [marks[0]]
        for component, mark in zip(parts, marks[1:], strict=True):
            words += [prefix + component, mark]
        return " ".join(words)

    def snapshots(self, skus: Sequence[str]) -> dict[str, StockSnapshot]:
        """`get_many` for `skus` (some of this read's SKUs) from the strings
        already read: hits decoded, misses read from the database and filled.
        The read's other SKUs are counted as hits (the caller answered them from
        the strings read)."""
        STATS["hits"] += len(self.skus) - len(skus)
        found: dict[str, StockSnapshot] = {}
        generations: dict[str, str] | None = None
        if self.contents is not None:
            by_sku = dict(zip(self.skus, self.contents, strict=True))
            try:
                # (A SKU answered "unchanged" has no string here: read as absent.)
                found, generations, _ = _parse_entries(skus, [by_sku[sku] or b"" for sku in skus])
            except Exception:
                STATS["errors"] += 1
                logger.warning("availability cache read failed", exc_info=True)
        return _complete(skus, found, generations)


def get_many(skus: Sequence[str]) -> dict[str, StockSnapshot]:
    """Availability snapshots for SKUs: cache hits, plus the misses read from the
    database in one query and written back. Unknown SKUs are absent."""
    read = Read(skus)
    return read.snapshots(read.skus)


def _complete(
    skus: Sequence[str], found: dict[str, StockSnapshot], generations: dict[str, str] | None
) -> dict[str, StockSnapshot]:
    """The hits `found` for `skus` (distinct), and the misses from the database."""
    STATS["hits"] += sum(1 for sku in skus if sku in found)
    missing = [sku for sku in skus if sku not in found]
    # A cached bundle whose component entries are missing: those are misses too.
    missing += [c for c in _components_missing(skus, found) if c not in missing]
    for _attempt in range(2):  # a bundle loaded from the database: then its components
        if not missing:
            break
        STATS["misses"] += len(missing)
        loaded = load_from_database(missing)
        # Fill after reading the committed state: a concurrent write-through
        # with a newer version wins field by field, in either order; an
        # invalidation since our read (generation moved) wins outright. (A
        # component entry this call never read has no generation: its fill is
        # written only if the entry was never invalidated.)
        if generations is not None:
            _fill(loaded.values(), generations)
        found.update(loaded)
        for snap in loaded.values():
            if snap.components:
                _remember_parts(snap.sku, tuple(c for c, _ in snap.components))
        missing = _components_missing(loaded, found)
    _attach_parts(skus, found)
    return {sku: found[sku] for sku in skus if sku in found}


# --------------------------------------------------------------------------
# Writing (after commit) and invalidation
# --------------------------------------------------------------------------

# Changes of these types may open or close holds: without `holds` on the change
# the read model cannot follow them (the row's holds become unknown).
HOLD_TYPES = frozenset({"RESERVE", "RELEASE", "FULFILL"})


def apply_committed_changes(changes: Sequence[Any]) -> None:
    """The write-through: apply committed balances (service-layer listener).

    `changes` are `inventory.services.CommittedChange`s. Several changes to one
    row in one transaction collapse to the newest version (their hold changes
    summed). When `changes` carries `created_orders` (a reservation's commit),
    their gate memory is written in the same call.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    unresolved = [c for c in changes if not c.sku or not c.warehouse_code]
    names = _natural_keys(unresolved) if unresolved else {}
    for change in changes:
        sku, code = (change.sku, change.warehouse_code)
        if not sku or not code:
            sku, code = names.get(change.inventory_id, (None, None))
            if sku is None:
                continue
        holds = getattr(change, "holds", None)
        known = holds is not None or change.type not in HOLD_TYPES
        row = rows.get((sku, code))
        if row is None:
            row = rows[(sku, code)] = {"latest": change, "known": known, "delta": []}
        elif change.version > row["latest"].version:
            row["latest"] = change
        row["known"] = row["known"] and known
        row["delta"].extend(holds or ())
        if change.available <= GATE_WATCH_UNITS:
            _watch(sku)
    by_key: dict[str, list] = {}
    for (sku, code), row in rows.items():
        latest = row["latest"]
        by_key.setdefault(_key(sku), []).append(
            (
                code,
                latest.version,
                latest.available,
                "+" if row["known"] else "?",
                _delta_string(row["delta"]) if row["known"] else "",
            )
        )
    remember = [_order_key(o) for o in getattr(changes, "created_orders", ())]
    if not by_key and not remember:
        return
    store = _store()
    writes = [(key, "", "", fields) for key, fields in by_key.items()]
    delay_ms = settings.STOCKROOM_WRITE_BEHIND_MS
    if delay_ms > 0 and store is _redis_store and all(c.type == "RESERVE" for c in changes):
        # A reservation only lowers what can be sold: its write may wait a few
        # milliseconds for other commits of this process (one Lua call for
        # them all). Until it lands the read model shows more than the database,
        # so the sold-out gate refuses less, never more. Everything that raises
        # availability is written now.
        _WRITE_BEHIND.submit(
            (store, writes, remember), delay=delay_ms / 1000, max_items=WRITE_BEHIND_MAX_COMMITS
        )
        return
    _apply_writes(store, writes, remember)


def _apply_writes(store, writes: list[Write], remember: list[str]) -> None:
    try:
        applied = store.apply(writes, remember=remember)
        STATS["write_throughs"] += applied
        STATS["stale_writes"] += sum(len(fields) for *_, fields in writes) - applied
    except Exception:
        STATS["errors"] += 1
        logger.warning("availability cache write-through failed", exc_info=True)


# Commits queued at most before the committing thread sends them itself, and
# fields per Lua call when a queue is sent (a long script blocks Redis for others).
WRITE_BEHIND_MAX_COMMITS = 32
WRITE_BEHIND_MAX_FIELDS = 2000


def _send_queued(items: list[tuple[Any, list[Write], list[str]]]) -> None:
    """Send queued reservation write-throughs: one Lua call per store for all of
    them (several when they carry more than WRITE_BEHIND_MAX_FIELDS fields). Every
    write keeps its own version and hold changes; the script applies them in
    order, and adding hold changes does not depend on the order anyway."""
    stores: dict[int, tuple[Any, list[Write], list[str]]] = {}
    for store, writes, remember in items:
        group = stores.setdefault(id(store), (store, [], []))
        group[1].extend(writes)
        group[2].extend(remember)
    for store, writes, remember in stores.values():
        chunk: list[Write] = []
        fields = 0
        for write in writes:
            chunk.append(write)
            fields += len(write[3])
            if fields >= WRITE_BEHIND_MAX_FIELDS:
                _apply_writes(store, chunk, [])
                chunk, fields = [], 0
        if chunk or remember:
            _apply_writes(store, chunk, remember)


_WRITE_BEHIND = WriteBehind(_send_queued, name="stockroom-read-model-write-behind")


def flush_writes() -> None:
    """Send this process's queued write-throughs now (and wait for one in
    flight). Every read of the read model calls it first: a process always
    reads its own writes."""
    _WRITE_BEHIND.flush()


def _natural_keys(changes: Sequence[Any]) -> dict[Any, tuple[str, str]]:
    from .models import Inventory

    ids = [c.inventory_id for c in changes]
    rows = Inventory.objects.filter(pk__in=ids).values_list("pk", "product__sku", "warehouse__code")
    return {pk: (sku, code) for pk, sku, code in rows}


def invalidate(skus: Iterable[str]) -> None:
    """Make entries unreadable until refilled (after a change the versions don't
    cover: a stock policy, a threshold, a hold's expiry moved). Bumps each
    entry's generation, so a fill that read the database before this cannot
    write the old state back."""
    keys = [_key(sku) for sku in skus]
    try:
        _store().invalidate(keys)
    except Exception:
        STATS["errors"] += 1
        logger.warning("availability cache invalidation failed", exc_info=True)


def apply_hold_changes(changes: Sequence[Any]) -> None:
    """After a confirmation or extension committed: the entries of the SKUs whose
    holds moved no longer know those holds' expiry, so they are invalidated and
    the next read refills them (one refill per confirmed SKU). Without this a
    confirmed hold would look lapsed at its old `expires_at`."""
    invalidate({sku for change in changes for sku, _code, _units in change.lines})


# --------------------------------------------------------------------------
# The sold-out gate
# --------------------------------------------------------------------------


def _order_key(order_id: str) -> str:
    prefix = settings.STOCKROOM_AVAILABILITY_KEY_PREFIX
    return f"{prefix}:order:{ORDER_KEY_VERSION}:{order_id}"


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
    reserved, holds past their expiry not counted) according to complete,
    committed cache entries of SKUs that do not allow backorders; otherwise
    None, and the database decides. A cache that is down, missing, partial or
    unsure of a row's holds never refuses anything, and neither does a retry of
    an order that already holds a reservation (its idempotent replay must reach
    the database).
    """
    if not lines or not settings.STOCKROOM_SOLD_OUT_GATE:
        return None
    if not all(_watched(sku) for sku, _, _ in lines):
        # Some line's SKU was not seen low by this process: not worth a round
        # trip (the watch list, above); the database decides.
        STATS["gate_skipped"] += 1
        return None
    cached, known_order, generations, unsettled = _read(
        [sku for sku, _, _ in lines], _order_key(order_id) if order_id else None
    )
    if known_order:
        return None
    if unsettled and generations is not None:
        # An entry that lost track of a row's holds (a close that did not say
        # which holds it closed, or a hold horizon passed) is refilled here, once:
        # the next request reads it from Redis again.
        loaded = load_from_database(unsettled)
        _fill(loaded.values(), generations)
        cached.update(loaded)
    active = set(active_codes) if active_codes is not None else None
    short = []
    for sku, code, quantity in lines:
        snap = cached.get(sku)
        # An entry filled from the replica may be behind the primary: the database decides.
        if snap is None or snap.stock_policy != "normal" or snap.from_replica:
            if snap is not None and snap.stock_policy != "normal":
                _WATCHED.pop(sku, None)  # the gate never refuses a SKU that may backorder
            return None
        if snap.components is not None:
            available = _bundle_units(snap, cached, code, active)
            if available is None:
                return None
        elif code is not None:
            available = snap.warehouses.get(code, 0)
            if active is not None and code not in active:
                available = 0
        else:
            available = snap.total_available(active)
        if available > 0:
            _unwatch_plentiful(cached)
            return None
        short.append({"sku": sku, "warehouse": code, "requested": quantity, "available": 0})
    STATS["gate_refusals"] += 1
    return short


# --------------------------------------------------------------------------
# The gate's watch list: when a reservation asks the gate at all
# --------------------------------------------------------------------------

# The gate refuses only an order whose every line is sold out in the cache, and
# asking it costs a Redis round trip before every reservation: for the plentiful
# SKUs of an ordinary day, a round trip that buys nothing. So `sold_out_lines`
# reads the cache only when every line's SKU (or, for a bundle this process
# knows, one of its components) is on this process's watch list: SKUs it last
# saw with a row at or below GATE_WATCH_UNITS sellable units (or none) — in the
# write-throughs of its own commits, in every entry it reads or fills — and
# SKUs the database has just refused (`watch`, called by the reservation
# services). An entry the gate reads with every row above the mark leaves the
# list. The list only decides whether the gate is asked; what the gate answers
# is unchanged, and a SKU that is not on it is decided by the database, which
# puts it on the list when it refuses. So a SKU sold out by another process
# costs this process one refused database call before the gate takes over.
# Per SKU, not per warehouse: a SKU with one low warehouse is watched everywhere.
GATE_WATCH_UNITS = 5
_WATCHED: dict[str, None] = {}
_WATCHED_MAX = 100_000


def watch(skus: Iterable[str]) -> None:
    """Put SKUs on the gate's watch list (the database refused an order for them)."""
    for sku in skus:
        _watch(sku)


def _watch(sku: str) -> None:
    if sku not in _WATCHED:
        if len(_WATCHED) >= _WATCHED_MAX:
            _WATCHED.clear()
        _WATCHED[sku] = None


# A bundle is watched when one of its components is: the components of the
# bundles this process has read (their entries' `c`, `_Decoded.appended`).
_BUNDLE_PARTS: dict[str, tuple[str, ...]] = {}


def _remember_parts(sku: str, parts: tuple[str, ...]) -> None:
    if _BUNDLE_PARTS.get(sku) != parts:
        if len(_BUNDLE_PARTS) >= _WATCHED_MAX:
            _BUNDLE_PARTS.clear()
        _BUNDLE_PARTS[sku] = parts


def _watched(sku: str) -> bool:
    return sku in _WATCHED or any(c in _WATCHED for c in _BUNDLE_PARTS.get(sku, ()))


def _low(available: Iterable[int]) -> bool:
    """Whether rows with these sellable units (all of a SKU's) are worth watching."""
    return min(available, default=0) <= GATE_WATCH_UNITS


def _unwatch_plentiful(cached: dict[str, StockSnapshot]) -> None:
    for sku, snap in cached.items():
        if snap.components is None and not snap.from_replica and not _low(snap.warehouses.values()):
            _WATCHED.pop(sku, None)


def _bundle_units(
    snap: StockSnapshot,
    cached: dict[str, StockSnapshot],
    code: str | None,
    active: set[str] | None,
) -> int | None:
    """Whole bundle units the cached components can supply (at `code`, or summed
    over the warehouses), or None when the gate must not judge: a component not
    cached, or one that may backorder (the database decides those)."""
    parts = []
    for component, quantity in snap.components or ():
        part = cached.get(component)
        if part is None or part.stock_policy != "normal":
            return None
        parts.append((part, quantity))
    if not parts:
        return None
    codes = {code} if code is not None else set().union(*(p.warehouses for p, _ in parts))
    if active is not None:
        codes &= active
    return sum(
        max(min(part.warehouses.get(c, 0) // quantity for part, quantity in parts), 0)
        for c in codes
    )
