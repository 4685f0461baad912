"""Benchmarks for data-aggregator: each measures our code against a baseline in the same run.

Run ``make bench`` (or ``uv run python -m benchmarks --help``); docs/performance.md explains the
method and records the figures. ``--smoke`` runs everything on tiny inputs, which the test suite
does so the benchmarks cannot rot.
"""
