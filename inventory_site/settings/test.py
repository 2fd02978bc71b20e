"""Test settings: PostgreSQL (and Redis) are required; the suite never runs on SQLite.

DATABASE_URL defaults to the local cluster's trust-auth `postgres` user;
REDIS_URL to the local Redis, database 15 (the test suite owns it).
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stockroom")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from .base import *  # noqa: F403
from .base import DATABASES

assert DATABASES["default"]["ENGINE"] == "inventory_site.postgresql", (
    "the test suite runs on PostgreSQL only (Django's backend, inventory_site/postgresql/)"
)

# Tests open and close connections from many threads; persistent connections
# would leak across test databases.
DATABASES["default"]["CONN_MAX_AGE"] = 0
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
DEBUG = False
