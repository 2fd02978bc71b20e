"""Routing: lines without a warehouse go to the closest warehouse that can supply them,
preferring one warehouse, then the fewest, then the shortest total distance.

Warehouses at real coordinates; distances from Hannover (52.37, 9.73):
HAM 132 km, CGN 249 km, BER 250 km, MUC 489 km. From Nuremberg (49.45, 11.08):
MUC 150, CGN 337, BER 378, HAM 462.
"""

import pytest

from inventory import errors, routing, services
from inventory.routing import Coordinates, RequestedLine
from inventory.selectors import SupplySnapshot, WarehouseSite, supply_for_skus
from warehouses.models import Warehouse

from ..conftest import assert_invariants, receive
from ..factories import BackorderProductFactory, ProductFactory, WarehouseFactory

pytestmark = pytest.mark.django_db

HANNOVER = {"latitude": 52.37, "longitude": 9.73}
NUREMBERG = {"latitude": 49.45, "longitude": 11.08}
SITES = {
    "BER": (52.52, 13.405),
    "HAM": (53.55, 9.993),
    "MUC": (48.137, 11.575),
    "CGN": (50.94, 6.96),
}


@pytest.fixture
def sites(db):
    for code, (lat, lon) in SITES.items():
        WarehouseFactory(code=code, latitude=lat, longitude=lon)


def stock(**by_sku):
    """stock(A={"HAM": 5, "BER": 1}) receives those quantities."""
    for sku, where in by_sku.items():
        ProductFactory(sku=sku)
        for code, qty in where.items():
            receive(sku, code, qty)


def reserve(storefront, lines, ship_to=HANNOVER, order_id="o"):
    body = {"order_id": order_id, "lines": lines}
    if ship_to is not None:
        body["ship_to"] = ship_to
    response = storefront.post("/api/v1/reservations/", body)
    assert response.status_code == 201, response.json()
    assert_invariants()
    return {line["sku"]: line["warehouse"] for line in response.json()["lines"]}


def test_haversine_matches_a_known_distance():
    berlin, munich = Coordinates(52.52, 13.405), Coordinates(48.137, 11.575)
    assert routing.haversine_km(berlin, munich) == pytest.approx(504, abs=2)


def test_closest_warehouse_that_can_supply(storefront, sites):
    stock(A={"HAM": 5, "BER": 5, "MUC": 5})
    assert reserve(storefront, [{"sku": "A", "quantity": 2}]) == {"A": "HAM"}
    assert reserve(storefront, [{"sku": "A", "quantity": 2}], NUREMBERG, "o2") == {"A": "MUC"}


def test_a_closer_warehouse_without_enough_is_skipped(storefront, sites):
    stock(A={"HAM": 1, "BER": 5})
    assert reserve(storefront, [{"sku": "A", "quantity": 2}]) == {"A": "BER"}


def test_one_warehouse_for_the_whole_order_beats_closer_splits(storefront, sites):
    # HAM has A and B, BER has C; only MUC (farthest) has all three.
    stock(A={"HAM": 5, "MUC": 5}, B={"HAM": 5, "MUC": 5}, C={"BER": 5, "MUC": 5})
    lines = [{"sku": s, "quantity": 1} for s in "ABC"]
    assert reserve(storefront, lines) == {"A": "MUC", "B": "MUC", "C": "MUC"}


def test_fewest_warehouses_beats_shortest_distance(storefront, sites):
    # Three close warehouses could do it; two farther ones do it with fewer.
    stock(A={"HAM": 5, "MUC": 5}, B={"BER": 5, "MUC": 5}, C={"CGN": 5})
    lines = [{"sku": s, "quantity": 1} for s in "ABC"]
    assert reserve(storefront, lines) == {"A": "MUC", "B": "MUC", "C": "CGN"}


def test_among_equally_few_the_shortest_total_distance(storefront, sites):
    stock(A={"HAM": 5, "CGN": 5}, B={"BER": 5, "MUC": 5})
    lines = [{"sku": s, "quantity": 1} for s in "AB"]
    # From Hannover: HAM+BER = 382 km beats CGN+BER 499, HAM+MUC 621, CGN+MUC 738.
    assert reserve(storefront, lines) == {"A": "HAM", "B": "BER"}
    # From Nuremberg: CGN+MUC = 487 km is the shortest pair.
    assert reserve(storefront, lines, NUREMBERG, "o2") == {"A": "CGN", "B": "MUC"}


def test_lines_with_a_warehouse_stay_there_and_count_against_its_supply(storefront, sites):
    stock(A={"HAM": 3, "BER": 5})
    lines = [{"sku": "A", "quantity": 2, "warehouse": "HAM"}, {"sku": "B", "quantity": 1}]
    ProductFactory(sku="B")
    receive("B", "HAM", 1)
    assert reserve(storefront, lines) == {"A": "HAM", "B": "HAM"}
    # HAM has 1 A left: a routed line for 2 more goes to BER, the fixed one stays.
    lines = [{"sku": "A", "quantity": 1, "warehouse": "HAM"}, {"sku": "A", "quantity": 2}]
    response = storefront.post(
        "/api/v1/reservations/", {"order_id": "o2", "lines": lines, "ship_to": HANNOVER}
    )
    got = sorted((x["warehouse"], x["quantity"]) for x in response.json()["lines"])
    assert got == [("BER", 2), ("HAM", 1)]


def test_a_line_no_warehouse_has_whole_is_split_closest_first(storefront, sites):
    stock(A={"BER": 10, "HAM": 4, "MUC": 20})
    response = storefront.post(
        "/api/v1/reservations/",
        {"order_id": "o", "lines": [{"sku": "A", "quantity": 12}], "ship_to": HANNOVER},
    )
    assert response.status_code == 201
    # MUC alone could, so no split: one warehouse first.
    assert [(x["warehouse"], x["quantity"]) for x in response.json()["lines"]] == [("MUC", 12)]
    response = storefront.post(
        "/api/v1/reservations/",
        {"order_id": "o2", "lines": [{"sku": "A", "quantity": 12}], "ship_to": HANNOVER},
    )
    # Now no single warehouse has 12: two, filled closest first (HAM, then BER).
    got = sorted((x["warehouse"], x["quantity"]) for x in response.json()["lines"])
    assert got == [("BER", 8), ("HAM", 4)]
    assert_invariants()
    # The retry of the split order is recognised as the same order.
    again = storefront.post(
        "/api/v1/reservations/",
        {"order_id": "o2", "lines": [{"sku": "A", "quantity": 12}], "ship_to": HANNOVER},
    )
    assert again.status_code == 200


def test_among_equally_few_warehouses_fewer_splits_beat_distance(storefront, sites):
    # HAM+CGN (381 km) would split B (3+3); HAM+BER (382 km) needs no split.
    stock(A={"HAM": 5}, B={"HAM": 3, "CGN": 3, "BER": 5})
    lines = [{"sku": "A", "quantity": 5}, {"sku": "B", "quantity": 5}]
    assert reserve(storefront, lines) == {"A": "HAM", "B": "BER"}


def test_without_ship_to_ties_go_by_code(storefront, sites):
    stock(A={"HAM": 5, "MUC": 5, "BER": 5})
    assert reserve(storefront, [{"sku": "A", "quantity": 1}], ship_to=None) == {"A": "BER"}


def test_inactive_warehouses_and_ones_without_coordinates(storefront, sites):
    stock(A={"HAM": 5, "CGN": 5, "MUC": 5})
    Warehouse.objects.filter(code="HAM").update(is_active=False)
    Warehouse.objects.filter(code="CGN").update(latitude=None, longitude=None)
    assert reserve(storefront, [{"sku": "A", "quantity": 1}]) == {"A": "MUC"}


def test_backorder_sku_without_stock_rows_goes_to_the_closest(storefront, sites):
    BackorderProductFactory(sku="BACK", backorder_limit=3)
    assert reserve(storefront, [{"sku": "BACK", "quantity": 3}]) == {"BACK": "HAM"}
    assert reserve(storefront, [{"sku": "BACK", "quantity": 3}], order_id="o2") == {"BACK": "CGN"}


def test_reroutes_once_when_the_snapshot_went_stale(storefront, sites, monkeypatch):
    stock(A={"HAM": 2, "BER": 2})
    calls = []

    def snapshot_then_a_competing_order(skus, **kwargs):
        snapshot = supply_for_skus(skus, **kwargs)
        if not calls:  # between the read and the locks, another order takes Hamburg
            services.stock_reserve(
                order_id="rival", lines=[services.ReserveLine("A", "HAM", 2)], actor="c"
            )
        calls.append(snapshot)
        return snapshot

    # The first plan comes from the read model, the re-route from the database.
    monkeypatch.setattr(routing, "supply_from_read_model", snapshot_then_a_competing_order)
    monkeypatch.setattr(routing, "supply_for_skus", snapshot_then_a_competing_order)
    assert reserve(storefront, [{"sku": "A", "quantity": 2}]) == {"A": "BER"}
    assert len(calls) == 2


def test_gives_up_after_one_reroute(storefront, sites, monkeypatch):
    stock(A={"HAM": 1})

    def always_stale(skus, **kwargs):
        return SupplySnapshot(
            (WarehouseSite("HAM", 53.55, 9.993),), {("A", "HAM"): 5}, frozenset({"A"})
        )

    monkeypatch.setattr(routing, "supply_from_read_model", always_stale)
    monkeypatch.setattr(routing, "supply_for_skus", always_stale)
    response = storefront.post(
        "/api/v1/reservations/", {"order_id": "o", "lines": [{"sku": "A", "quantity": 2}]}
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "insufficient_stock"


def _snapshot(**reservable):
    codes = sorted({code for code in reservable})
    return SupplySnapshot(
        tuple(WarehouseSite(code, *SITES[code]) for code in codes),
        {(sku, code): qty for code, by_sku in reservable.items() for sku, qty in by_sku.items()},
        frozenset(sku for by_sku in reservable.values() for sku in by_sku),
    )


def test_route_lines_is_pure_and_deterministic():
    snapshot = _snapshot(HAM={"A": 1}, BER={"A": 5, "B": 5}, CGN={"B": 5})
    lines = [RequestedLine("A", 1), RequestedLine("B", 1)]
    ship_to = Coordinates(**HANNOVER)
    first = routing.route_lines(lines, ship_to, snapshot)
    assert first == routing.route_lines(list(reversed(lines)), ship_to, snapshot)
    assert {(x.sku, x.warehouse) for x in first} == {("A", "BER"), ("B", "BER")}


def test_greedy_cover_splits_when_it_must(monkeypatch):
    monkeypatch.setattr(routing, "MAX_SETS_EXAMINED", 1)
    snapshot = _snapshot(HAM={"A": 2}, BER={"A": 2}, CGN={"A": 2}, MUC={"A": 1})
    routed = routing.route_lines([RequestedLine("A", 5)], Coordinates(**HANNOVER), snapshot)
    assert sum(x.quantity for x in routed) == 5
    assert {x.warehouse for x in routed} == {"HAM", "CGN", "BER"}


def test_greedy_cover_when_too_many_sets(monkeypatch):
    monkeypatch.setattr(routing, "MAX_SETS_EXAMINED", 2)
    snapshot = _snapshot(HAM={"A": 1}, BER={"B": 1}, CGN={"C": 1}, MUC={"A": 1, "B": 1})
    lines = [RequestedLine(s, 1) for s in "ABC"]
    routed = routing.route_lines(lines, Coordinates(**HANNOVER), snapshot)
    assert {x.warehouse for x in routed} == {"MUC", "CGN"}


def test_unknown_sku_in_a_routed_line():
    with pytest.raises(errors.UnknownSku):
        routing.route_lines([RequestedLine("X", 1)], None, _snapshot(HAM={"A": 1}))


def test_a_site_closed_seconds_ago_is_routed_around_not_refused(storefront, sites):
    from inventory.selectors import active_warehouse_codes

    stock(A={"HAM": 5, "BER": 5})
    assert "HAM" in active_warehouse_codes()  # the in-process list is cached for a few seconds
    Warehouse.objects.filter(code="HAM").update(is_active=False)  # closed meanwhile

    # Hannover's closest site is HAM; it is closed, so the order goes to BER.
    assert reserve(storefront, [{"sku": "A", "quantity": 2}]) == {"A": "BER"}


def test_a_valid_order_is_not_refused_because_routing_split_its_lines(storefront, sites, settings):
    """STOCKROOM_MAX_ORDER_LINES counts the lines the client sent: two lines, each
    split over two warehouses (four reserved lines), is a valid order of two."""
    settings.STOCKROOM_MAX_ORDER_LINES = 2
    stock(A={"HAM": 3, "BER": 3}, B={"HAM": 3, "BER": 3})
    response = storefront.post(
        "/api/v1/reservations/",
        {"order_id": "split", "lines": [{"sku": "A", "quantity": 5}, {"sku": "B", "quantity": 5}]},
    )
    assert response.status_code == 201, response.json()
    assert len(response.json()["lines"]) == 4
    assert_invariants()
    three = [{"sku": s, "quantity": 1} for s in "AB"] + [{"sku": "A", "quantity": 1}]
    response = storefront.post("/api/v1/reservations/", {"order_id": "three", "lines": three})
    assert response.status_code == 400  # the client's own lines still count
