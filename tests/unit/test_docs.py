"""The README's configuration table must list every setting the code reads, with its real default."""

from __future__ import annotations

import re
from pathlib import Path

from data_aggregator.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_with_its_default() -> None:
    rows = dict(re.findall(r"^\| `([A-Z_0-9]+)` \| ([^|]+) \|", README.read_text(), flags=re.MULTILINE))
    for name, field in Settings.model_fields.items():
        alias = field.alias
        assert alias in rows, f"{alias} ({name}) is missing from the README's configuration table"
        documented = rows[alias].strip().strip("`")
        expected = "required" if field.is_required() else str(field.default)
        assert documented == expected, f"{alias}: README says {documented!r}, code says {expected!r}"
