-- Time-ordered UUIDv7 ids for rows the stock functions write (PostgreSQL 15 has
-- no uuidv7()): stockroom_uuid7() one id; stockroom_uuid7_prefix() and
-- stockroom_uuid7_at() many ids of one statement from one clock reading.
--
-- The live definitions (see reserve_orders.sql for how a change lands).

CREATE OR REPLACE FUNCTION stockroom_uuid7()
RETURNS uuid
LANGUAGE sql
PARALLEL SAFE
AS $function$
    SELECT encode(
        set_bit(set_bit(
            overlay(uuid_send(gen_random_uuid())
                    PLACING substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
                    FROM 1 FOR 6),
            52, 1), 53, 1),
        'hex')::uuid
$function$;

CREATE OR REPLACE FUNCTION stockroom_uuid7_prefix()
RETURNS text
LANGUAGE sql
PARALLEL SAFE
AS $function$
    SELECT lpad(to_hex(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint), 12, '0')
           || '7' || lpad(to_hex(floor(random() * 4096)::int), 3, '0')
$function$;

CREATE OR REPLACE FUNCTION stockroom_uuid7_at(prefix text, base bigint, n bigint)
RETURNS uuid
LANGUAGE sql
IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT (prefix || to_hex((-9223372036854775808)::bigint
                             | ((base + n) & 4611686018427387903)))::uuid
$function$;
