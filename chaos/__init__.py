"""Jepsen-style reliability harness: seeded HTTP workload, faults, invariant checker.

`python chaos/run.py --help` for the long runs; `tests/reliability/` runs short ones.
"""
