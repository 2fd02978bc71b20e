"""Issue #13 item 9: the reference model, driven statefully against the real API.

`test_reference_model` is the bounded CI run (seeded: the same examples every
run); `STOCKROOM_MODEL_EXAMPLES=2000` (and optionally `STOCKROOM_MODEL_STEPS`)
turns it into the long, randomised run (docs/RELIABILITY.md, "Reference model").
"""

import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import run_state_machine_as_test

from .machine import OUTCOMES, StockroomMachine

pytestmark = pytest.mark.django_db(transaction=True)


# 60 examples since bundles joined the model (issue #16): each example does more
# (bundle orders are two statements and more lines), and 60 keep the CI run at
# the duration 100 had before (docs/RELIABILITY.md, "Reference model").
def model_settings(examples: int = 60, steps: int = 40, **extra) -> settings:
    long_mode = "STOCKROOM_MODEL_EXAMPLES" in os.environ
    return settings(
        max_examples=int(os.environ.get("STOCKROOM_MODEL_EXAMPLES", examples)),
        stateful_step_count=int(os.environ.get("STOCKROOM_MODEL_STEPS", steps)),
        deadline=None,
        derandomize=not long_mode,
        database=None,
        print_blob=long_mode,
        suppress_health_check=list(HealthCheck),
        **extra,
    )


@pytest.mark.slow
def test_reference_model(test_clock):
    OUTCOMES.clear()
    try:
        run_state_machine_as_test(StockroomMachine, settings=model_settings())
    finally:
        if os.environ.get("STOCKROOM_MODEL_STATS"):
            print("\n".join(f"{n:6} {what}" for what, n in sorted(OUTCOMES.items())))
