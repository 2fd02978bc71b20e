"""Request context the service layer records on ledger rows: the request id.

The web middleware (inventory_site.request_id) and Celery tasks set it; every
ledger row written while it is set carries it, so any stock change can be
traced to the request or task that made it.
"""

from contextvars import ContextVar

from django.db import connection

_request_id: ContextVar[str] = ContextVar("stockroom_request_id", default="")


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str):
    """Set the request id; returns a token for `reset_request_id`."""
    return _request_id.set(value[:64])


def reset_request_id(token) -> None:
    _request_id.reset(token)


def request_id_to_database() -> None:
    """Hand the request id to the database triggers of the current transaction
    (`stockroom.request_id`, transaction-local), for a change that writes no ledger
    row: the event triggers (events app) put it on the events, e.g. reservation.confirmed."""
    value = current_request_id()
    if value and connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('stockroom.request_id', %s, true)", [value])
