"""Operations tooling: private PostgreSQL clusters for failover and replica tests (docs/SCALING.md)."""
