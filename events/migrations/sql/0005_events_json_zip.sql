CREATE OR REPLACE FUNCTION public.events_json_zip(k1 text, v1 jsonb, k2 text, v2 jsonb, k3 text DEFAULT NULL::text, v3 jsonb DEFAULT NULL::jsonb)
 RETURNS jsonb
 LANGUAGE sql
 IMMUTABLE
AS $function$
-- Parallel JSON arrays -> a JSON array of objects, in array order:
-- events_json_zip('sku', '["A","B"]', 'quantity', '[1,2]')
--   = [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 2}].
-- events_payload() uses it for the lists of the typed events (a function, not a
-- sub-select, so events_payload() stays inlinable into the reading query).
SELECT coalesce(jsonb_agg(CASE WHEN k3 IS NULL THEN jsonb_build_object(k1, v1 -> n, k2, v2 -> n)
                               ELSE jsonb_build_object(k1, v1 -> n, k2, v2 -> n, k3, v3 -> n)
                          END ORDER BY n), '[]')
FROM generate_series(0, jsonb_array_length(v1) - 1) AS n
$function$
