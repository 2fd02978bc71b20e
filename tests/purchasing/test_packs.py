"""Pack rounding: whole packs, never less than asked, less than one extra pack."""

from hypothesis import given
from hypothesis import strategies as st

from purchasing.services import packs_rounded_up


@given(quantity=st.integers(1, 1_000_000), pack_size=st.integers(1, 10_000))
def test_rounds_up_to_the_nearest_whole_pack(quantity, pack_size):
    ordered = packs_rounded_up(quantity, pack_size)

    assert ordered % pack_size == 0
    assert quantity <= ordered < quantity + pack_size
