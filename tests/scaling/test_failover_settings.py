"""The multi-host DATABASE_URL a failover setup uses (docs/SCALING.md) reaches libpq intact."""

from __future__ import annotations

import environ
from django.db.backends.postgresql.base import DatabaseWrapper

URL = "postgres://app@10.0.0.1:5432,10.0.0.2:5433/stockroom?target_session_attrs=read-write"


def test_multi_host_url_is_parsed_into_libpq_host_and_port_lists():
    config = environ.Env.db_url_config(URL)
    assert config["HOST"] == "10.0.0.1,10.0.0.2"
    assert config["PORT"] == "5432,5433"
    assert config["OPTIONS"] == {"target_session_attrs": "read-write"}
    params = DatabaseWrapper({**config, "TIME_ZONE": None, "CONN_MAX_AGE": 0,
                              "CONN_HEALTH_CHECKS": False, "AUTOCOMMIT": True,
                              "ATOMIC_REQUESTS": False}).get_connection_params()  # fmt: skip
    # libpq tries the hosts in order and keeps the one that accepts writes.
    assert params["host"] == "10.0.0.1,10.0.0.2"
    assert params["port"] == "5432,5433"
    assert params["target_session_attrs"] == "read-write"
