"""An invariant of bundle reservations (issue #16), computed from the lines and
the compositions alone (not by the reservation code): used by the bundle tests
in tests/services and tests/concurrency, proven by a planted fault in
tests/services/test_bundle_reservations.py."""

import dataclasses

from django.db import connection

from inventory import availability_cache


def gate_off_unless_it_knows_bundles(settings) -> None:
    """The sold-out gate's judgement of bundles (from their components' entries)
    is the availability half of issue #16 (hD1: `StockSnapshot.components`).
    Without it, the gate takes a cached bundle entry (no rows of its own) for
    sold out; until it is merged the gate is off in the bundle tests."""
    fields = {field.name for field in dataclasses.fields(availability_cache.StockSnapshot)}
    if "components" not in fields:
        settings.STOCKROOM_SOLD_OUT_GATE = False


def bundle_line_violations() -> list[tuple]:
    """(order, bundle, warehouse) groups whose component lines are not whole
    bundle units: per component, quantity / quantity-per-bundle must be the
    same whole number for every component of the bundle (also for fulfilled and
    released). Computed from the lines and BundleComponent, not from the
    reservation code."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH per AS (
                SELECT l.reservation_id, l.bundle_id, l.warehouse_id, bc.component_id,
                       bc.quantity AS per_unit,
                       coalesce(sum(l.quantity), 0) AS qty,
                       coalesce(sum(l.quantity_fulfilled), 0) AS ful,
                       coalesce(sum(l.quantity_released), 0) AS rel
                FROM (SELECT DISTINCT reservation_id, bundle_id, warehouse_id
                      FROM inventory_reservationline WHERE bundle_id IS NOT NULL) g
                JOIN inventory_bundlecomponent bc ON bc.bundle_id = g.bundle_id
                LEFT JOIN inventory_reservationline l
                       ON l.reservation_id = g.reservation_id AND l.bundle_id = g.bundle_id
                      AND l.warehouse_id = g.warehouse_id AND l.product_id = bc.component_id
                GROUP BY 1, 2, 3, 4, 5
            )
            SELECT reservation_id, bundle_id, warehouse_id FROM per
            GROUP BY 1, 2, 3
            HAVING bool_or(qty % per_unit <> 0 OR ful % per_unit <> 0 OR rel % per_unit <> 0)
                OR count(DISTINCT qty / per_unit) > 1
                OR count(DISTINCT ful / per_unit) > 1
                OR count(DISTINCT rel / per_unit) > 1
            """
        )
        return cursor.fetchall()


def stale_bundle_lines() -> list[tuple]:
    """(order, bundle, warehouse) groups of *open* bundle lines not made with the
    bundle's current composition (the promise of docs/ARCHITECTURE.md, "The
    composition race"): a component line of a product that is not a component
    now, or a component of the composition missing from the group. Computed from
    the lines and BundleComponent alone; `bundle_line_violations` checks the
    proportions. Proven by a planted fault in tests/bundles/test_races.py."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            WITH open_groups AS (
                SELECT DISTINCT l.reservation_id, l.bundle_id, l.warehouse_id
                FROM inventory_reservationline l
                JOIN inventory_reservation r ON r.id = l.reservation_id
                WHERE l.bundle_id IS NOT NULL AND l.status = 'active' AND r.status = 'active'
            ),
            lines AS (
                SELECT g.reservation_id, g.bundle_id, g.warehouse_id, l.product_id
                FROM open_groups g
                JOIN inventory_reservationline l
                  ON l.reservation_id = g.reservation_id AND l.bundle_id = g.bundle_id
                 AND l.warehouse_id = g.warehouse_id
            ),
            wanted AS (
                SELECT g.reservation_id, g.bundle_id, g.warehouse_id, bc.component_id AS product_id
                FROM open_groups g
                JOIN inventory_bundlecomponent bc ON bc.bundle_id = g.bundle_id
            )
            SELECT reservation_id, bundle_id, warehouse_id
            FROM ((SELECT * FROM lines EXCEPT SELECT * FROM wanted)
                  UNION (SELECT * FROM wanted EXCEPT SELECT * FROM lines)) AS diff
            GROUP BY 1, 2, 3
            """
        )
        return cursor.fetchall()
