"""Operations tooling: private PostgreSQL servers and a pg_auto_failover formation
(failover and replica tests, docs/SCALING.md)."""
