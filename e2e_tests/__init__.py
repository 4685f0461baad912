"""End-to-end scenarios: the whole pipeline, one JSON config per scenario, invariants checked after each.

``python -m e2e_tests --config e2e_tests/configs/<name>.json [--target local|aws --env dev]``
"""
