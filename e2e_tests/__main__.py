"""``python -m e2e_tests --config e2e_tests/configs/<name>.json [--target local|aws --env dev]``."""

from e2e_tests.cli import main

raise SystemExit(main())
