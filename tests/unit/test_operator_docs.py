"""What the README and runbooks tell an operator to type must exist and parse, as written."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from data_aggregator.cli import EXIT_CODES, build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "runbooks").glob("*.md"))]
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _code_lines(path: Path) -> list[str]:
    lines, inside = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            inside = not inside
        elif inside:
            lines.append(line.strip())
    return lines


@needs_make
def test_make_help_lists_every_target_the_readme_names() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"\bmake ([a-z][a-z0-9-]*)", readme))
    listed = subprocess.run(["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    targets = {line.split()[0] for line in listed.splitlines() if line.strip()}
    assert {"demo", "test", "e2e", "lint", "build", "bench", "install"} <= named
    assert named <= targets, named - targets


@needs_make
def test_bootstrap_never_pip_installs_into_the_system_python(tmp_path: Path) -> None:
    """With no uv on PATH, uv goes into a project-local venv (PEP 668 systems refuse anything else)."""
    plan = subprocess.run(
        ["make", "-n", "-B", "bootstrap"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    ).stdout
    assert "python3 -m venv" in plan
    assert ".tools/uv/bin/python -m pip install" in plan
    assert "python3 -m pip install" not in plan
    assert "sync --quiet --frozen --all-extras" in plan


def test_every_documented_command_line_parses() -> None:
    parser = build_parser()
    checked = 0
    for doc in DOCS:
        for line in _code_lines(doc):
            if not line.startswith("data-aggregator ") or "$(" in line:
                continue
            argv = shlex.split(line.partition("  #")[0])[1:]
            argv = [arg for arg in argv if arg not in (">", "|") and not arg.startswith(("dlq-", "head"))]
            try:
                parser.parse_args(argv)
            except SystemExit as exc:
                pytest.fail(f"{doc.name}: {line!r} does not parse (exit {exc.code})")
            checked += 1
    assert checked >= 8


def test_the_exit_code_table_is_the_same_in_help_and_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = dict(re.findall(r"^\| (\d+) \| ([a-z]+)", readme, flags=re.MULTILINE))
    assert set(table) == {"0", "1", "2", "3", "130"}
    for code, first_word in table.items():
        assert re.search(rf"^  {code}\s+{first_word}", EXIT_CODES, flags=re.MULTILINE), (code, first_word)


def test_runbooks_and_readme_use_the_dlq_subcommand() -> None:
    runbook = (ROOT / "docs" / "runbooks" / "dlq.md").read_text(encoding="utf-8")
    for command in ("data-aggregator dlq list", "data-aggregator dlq redrive --dry-run"):
        assert command in runbook
    assert "data-aggregator dlq list" in (ROOT / "README.md").read_text(encoding="utf-8")
