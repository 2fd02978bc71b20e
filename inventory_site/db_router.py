"""Database router: availability reads may go to a streaming replica.

With DATABASE_REPLICA_URL set, code that reads availability wraps itself in
`replica_reads()`; inside it, reads are routed to the `replica` alias. Every
other read, every write and every locking read stays on the primary, so a
replica's lag can only make a product page briefly stale, never a reservation
wrong (reservations lock and check on the primary).
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings

_prefer_replica: ContextVar[bool] = ContextVar("stockroom_prefer_replica", default=False)


@contextmanager
def replica_reads():
    token = _prefer_replica.set(True)
    try:
        yield
    finally:
        _prefer_replica.reset(token)


def read_alias() -> str:
    """The alias availability reads use right now."""
    if _prefer_replica.get() and "replica" in settings.DATABASES:
        return "replica"
    return "default"


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return "replica" if read_alias() == "replica" else None

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
