-- Least-privilege database role for the application (web, workers, beat).
--
-- Run as the role that owns the tables (the one `manage.py migrate` uses), after
-- every migrate, in the application's database:
--
--   psql "$OWNER_DATABASE_URL" -v app_role=stockroom_app -f docs/least_privilege.sql
--
-- The application connects as `stockroom_app` (DATABASE_URL); migrations run as
-- the owner. The app role may read everything and write what the services write,
-- but can never rewrite history: no UPDATE, DELETE or TRUNCATE on the ledger
-- (the append-only trigger is the second line of defence), and no TRUNCATE at all.
-- Tested by tests/reliability/test_security.py (creates a role, applies this, tries).

GRANT USAGE ON SCHEMA public TO :"app_role";
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"app_role";
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO :"app_role";
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO :"app_role";
REVOKE TRUNCATE ON ALL TABLES IN SCHEMA public FROM :"app_role";
REVOKE UPDATE, DELETE, TRUNCATE ON inventory_inventorytransaction FROM :"app_role";
