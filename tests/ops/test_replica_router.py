"""The replica router: only reads inside replica_reads() leave the primary.

Whether the replica is fresh enough (lag bound, up) is decided by
`replica_usable()`, tested against a real streaming replica in
tests/scaling/test_replica_reads.py; here it is given, to test the routing.
"""

from inventory.models import Inventory
from inventory_site import db_router
from inventory_site.db_router import ReplicaRouter, read_alias, replica_reads


def test_reads_stay_on_the_primary_without_a_replica(settings):
    assert "replica" not in settings.DATABASES
    with replica_reads():
        assert read_alias() == "default"
    assert ReplicaRouter().db_for_write(Inventory) == "default"


def test_reads_go_to_the_replica_only_inside_replica_reads(settings, monkeypatch):
    settings.DATABASES = {**settings.DATABASES, "replica": dict(settings.DATABASES["default"])}
    monkeypatch.setattr(db_router, "replica_usable", lambda: True)
    router = ReplicaRouter()
    assert router.db_for_read(Inventory) is None
    with replica_reads():
        assert router.db_for_read(Inventory) == "replica"
        assert router.db_for_write(Inventory) == "default"
    assert router.db_for_read(Inventory) is None
    assert router.allow_migrate("replica", "inventory") is False


def test_reads_stay_on_the_primary_while_the_replica_is_not_usable(settings, monkeypatch):
    settings.DATABASES = {**settings.DATABASES, "replica": dict(settings.DATABASES["default"])}
    monkeypatch.setattr(db_router, "replica_usable", lambda: False)
    with replica_reads():
        assert read_alias() == "default"
        assert ReplicaRouter().db_for_read(Inventory) is None
