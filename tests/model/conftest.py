"""Fixtures of the reference-model tests: the test clock, reaching the whole app."""

import types

import pytest

from inventory import clock

# Bridge, until #13 items 2-3 are merged: on this branch the expiry logic still
# reads django.utils.timezone.now(), not inventory.clock.now(). The bridge makes
# timezone.now() follow the test clock too, so that the defects the model finds
# here are the real ones (not merely "the app cannot see the test clock").
# After the merge set it False: every expiry decision must then use the clock
# itself, and a forgotten timezone.now() in an expiry path shows as a failure.
BRIDGE_DJANGO_TIMEZONE = False


@pytest.fixture
def test_clock(monkeypatch):
    clock.reset()
    if BRIDGE_DJANGO_TIMEZONE:
        import django.utils.timezone as django_timezone

        monkeypatch.setattr(clock, "timezone", types.SimpleNamespace(now=django_timezone.now))
        monkeypatch.setattr(django_timezone, "now", clock.now)
    yield clock
    clock.reset()
