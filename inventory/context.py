"""Request context the service layer records on ledger rows: the request id.

The web middleware (inventory_site.request_id) and Celery tasks set it; every
ledger row written while it is set carries it, so any stock change can be
traced to the request or task that made it.
"""

from contextvars import ContextVar

_request_id: ContextVar[str] = ContextVar("stockroom_request_id", default="")


def current_request_id() -> str:
    return _request_id.get()


def set_request_id(value: str):
    """Set the request id; returns a token for `reset_request_id`."""
    return _request_id.set(value[:64])


def reset_request_id(token) -> None:
    _request_id.reset(token)
