"""A reservation's fingerprint, written out directly (issue #18: a batch
fingerprints hundreds of orders), is the digest `idempotency.fingerprint` gives
for the same payload: stored fingerprints of older reservations keep matching
their retries. No database needed."""

from hypothesis import given
from hypothesis import strategies as st

from inventory.services import idempotency
from inventory.services.orders import reservation_fingerprint

text = st.text(min_size=1, max_size=40)  # every code point: quotes, controls, non-ASCII
merged_lines = st.dictionaries(
    st.tuples(text, text), st.integers(min_value=1, max_value=10**12), min_size=1, max_size=8
)


def documented(merged, actor):
    lines = sorted([sku, code, qty] for (sku, code), qty in merged.items())
    return idempotency.fingerprint({"placed_by": actor, "lines": lines})


@given(merged=merged_lines, actor=text)
def test_the_written_out_fingerprint_is_the_documented_one(merged, actor):
    assert reservation_fingerprint(merged, actor) == documented(merged, actor)


def test_a_known_fingerprint_never_changes():
    merged = {("TSHIRT-M", "BER"): 2, ('Ä"\\\n', "HAM"): 1}
    assert reservation_fingerprint(merged, "client:shop") == documented(merged, "client:shop")
    assert reservation_fingerprint({("A", "B"): 1}, "c") == (
        idempotency.fingerprint({"lines": [["A", "B", 1]], "placed_by": "c"})
    )
