"""The fast input checks (single and batch orders) never accept what the serializers refuse."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.views.reservations import ReservationBatchView, ReservationCreateView
from api.well_formed import well_formed_batch, well_formed_order

# Values near every rule's edges: types, blanks, whitespace, NUL, lengths, ranges.
texts = st.one_of(
    st.sampled_from(
        [
            "SKU-1",
            "BER",
            " BER",
            "BER ",
            "BER\n",
            "",
            " ",
            "a\x00b",
            "x" * 64,
            "x" * 65,
            "x" * 101,
            "ok.sku/1_2-3",
            "-bad",
            "ünï",
            "TAB\t",
            "1",
        ]
    ),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
numbers = st.one_of(
    st.integers(min_value=-2, max_value=3),
    st.sampled_from([10**9, 10**12, 2**63, 30 * 24 * 3600, 30 * 24 * 3600 + 1, True, False, 1.0]),
    st.text(max_size=3),
    st.none(),
)


skus = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,10}", fullmatch=True)
codes = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,6}", fullmatch=True)
valid_lines = st.fixed_dictionaries(
    {"sku": skus, "quantity": st.integers(1, 1000), "warehouse": codes}
)
valid_orders = st.fixed_dictionaries(
    {
        "order_id": st.text(min_size=1, max_size=12).filter(lambda t: t.strip() == t),
        "lines": st.lists(valid_lines, min_size=1, max_size=3),
    },
    optional={"expires_in": st.integers(1, 30 * 24 * 3600)},
)


def mutate_a_line(draw, lines):
    """Drop one field of one line, or give it a value near some rule's edge."""
    line = draw(st.sampled_from(lines))
    key = draw(st.sampled_from(["sku", "quantity", "warehouse", "note"]))
    if draw(st.booleans()):
        line.pop(key, None)
    else:
        line[key] = draw(texts | numbers)


@st.composite
def bodies(draw):
    """A valid body, then (usually) one change near an edge of some rule."""
    body = {"orders": draw(st.lists(valid_orders, min_size=1, max_size=4))}
    mutation = draw(st.sampled_from(["none", "order", "line", "extra", "duplicate", "empty"]))
    order = draw(st.sampled_from(body["orders"]))
    if mutation == "order":
        order[draw(st.sampled_from(["order_id", "lines", "expires_in", "ship_to"]))] = draw(
            texts | numbers
        )
    elif mutation == "line":
        mutate_a_line(draw, order["lines"])
    elif mutation == "extra":
        body[draw(st.sampled_from(["extra", "ship_to"]))] = draw(texts)
    elif mutation == "duplicate":
        body["orders"].append(dict(order))
    elif mutation == "empty":
        body = draw(st.sampled_from([{}, {"orders": []}, {"orders": {}}, []]))
    return body


def plain(value):
    return json.loads(json.dumps(value))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies())
def test_fast_check_accepts_only_what_the_serializer_accepts_unchanged(body):
    fast = well_formed_batch(body)
    if fast is None:
        return
    serializer = ReservationBatchView.InputSerializer(data=body)
    assert serializer.is_valid(), serializer.errors
    assert plain(serializer.validated_data["orders"]) == plain(fast)


def test_a_well_formed_batch_takes_the_fast_path():
    body = {
        "orders": [
            {"order_id": f"o-{i}", "lines": [{"sku": "A-1", "quantity": 2, "warehouse": "BER"}]}
            for i in range(500)
        ]
        + [
            {
                "order_id": "h",
                "expires_in": 900,
                "lines": [{"sku": "B", "quantity": 1, "warehouse": "X"}],
            }
        ]
    }
    body["orders"] = body["orders"][:500]
    assert well_formed_batch(body) == body["orders"]


def test_edge_cases_fall_back_to_the_serializer():
    line = {"sku": "A", "quantity": 1, "warehouse": "BER"}
    assert well_formed_batch({"orders": [{"order_id": " x", "lines": [line]}]}) is None
    assert (
        well_formed_batch({"orders": [{"order_id": "x", "lines": [{**line, "quantity": True}]}]})
        is None
    )
    assert well_formed_batch({"orders": [{"order_id": "x", "lines": [line]}] * 2}) is None
    assert (
        well_formed_batch({"orders": [{"order_id": "x", "lines": [{**line, "sku": "A\n"}]}]})
        is None
    )


single_lines = st.fixed_dictionaries(
    {"sku": skus, "quantity": st.integers(1, 1000)}, optional={"warehouse": codes}
)
coordinates = st.one_of(
    st.floats(-200, 200), st.integers(-200, 200), st.sampled_from([True, "1", None, 90, -180.0])
)


@st.composite
def single_bodies(draw):
    """A valid single-order body, then (usually) one change near an edge."""
    body = draw(
        st.fixed_dictionaries(
            {
                "order_id": st.text(min_size=1, max_size=12).filter(lambda t: t.strip() == t),
                "lines": st.lists(single_lines, min_size=1, max_size=3),
            },
            optional={
                "expires_in": st.integers(1, 30 * 24 * 3600),
                "ship_to": st.fixed_dictionaries(
                    {"latitude": coordinates, "longitude": coordinates}
                ),
            },
        )
    )
    mutation = draw(st.sampled_from(["none", "order", "line", "ship_to"]))
    if mutation == "order":
        key = draw(st.sampled_from(["order_id", "lines", "expires_in", "ship_to", "note"]))
        body[key] = draw(texts | numbers)
    elif mutation == "line":
        mutate_a_line(draw, body["lines"])
    elif mutation == "ship_to":
        body["ship_to"] = draw(st.sampled_from([{}, {"latitude": 1}, [], "x"]))
    return body


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(body=single_bodies())
def test_fast_single_check_accepts_only_what_the_serializer_accepts_unchanged(body):
    fast = well_formed_order(body)
    if fast is None:
        return
    serializer = ReservationCreateView.InputSerializer(data=body)
    assert serializer.is_valid(), serializer.errors
    assert plain(serializer.validated_data) == plain(fast)


def test_a_plain_storefront_order_takes_the_fast_path():
    body = {
        "order_id": "ORD-1",
        "lines": [{"sku": "A-1", "quantity": 2}, {"sku": "B", "quantity": 1, "warehouse": "X"}],
        "ship_to": {"latitude": 52, "longitude": 9.73},
        "expires_in": 900,
    }
    assert well_formed_order(body) == {**body, "ship_to": {"latitude": 52.0, "longitude": 9.73}}
