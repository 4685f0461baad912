"""The benchmarks keep working: every one runs at smoke scale and returns well-formed results.

Nothing here looks at how fast anything was. Timings belong to ``make bench`` and
docs/performance.md; a test suite that asserted them would fail on a busy machine and teach people
to ignore it. What is checked is shape and sanity: tables whose rows fit their headers, finite
non-negative figures, bundles that compress, peaks above the interpreter's floor, batched claims
making fewer DynamoDB calls than the one-at-a-time baseline.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from benchmarks import corpus
from benchmarks.__main__ import BENCHMARKS, main, run
from benchmarks.common import SMOKE, Result, Table, Target, percentile


@pytest.fixture(scope="module")
def results() -> dict[str, Result]:
    return {result.name: result for result in run(list(BENCHMARKS), SMOKE)}


def _check_table(table: Table) -> None:
    assert table.title
    assert table.rows, f"{table.title}: no rows"
    for row in table.rows:
        assert len(row) == len(table.headers), f"{table.title}: row {row} does not fit {table.headers}"
        for cell in row:
            if isinstance(cell, float):
                assert math.isfinite(cell), f"{table.title}: {row}"
                assert cell >= 0, f"{table.title}: {row}"
    rendered = table.render().splitlines()
    assert rendered[2].startswith("| ")
    assert rendered[3].startswith("|---")
    assert len(rendered) >= 4 + len(table.rows)


@pytest.mark.parametrize("name", list(BENCHMARKS))
def test_each_benchmark_returns_well_formed_tables_and_targets(results: dict[str, Result], name: str) -> None:
    result = results[name]
    assert result.scale == "smoke"
    assert result.tables
    for table in result.tables:
        _check_table(table)
    assert result.targets, "every benchmark judges at least one target"
    for target in result.targets:
        assert isinstance(target.met, bool)
        assert target.name
        assert target.detail
    assert all(math.isfinite(v) for v in result.figures.values())
    json.dumps(result.to_json())  # --json must always be able to write it
    assert result.render().startswith("### ")


def test_throughput_figures_are_sane(results: dict[str, Result]) -> None:
    figures = results["throughput"].figures
    assert figures["ours_mb_s"] > 0
    assert figures["naive_mb_s"] > 0
    assert figures["raw_mb_s"] > 0
    assert 1.0 < figures["ours_ratio"] < 10  # the corpus mixes text with incompressible bytes
    assert 1.0 < figures["level6_ratio"] < 10


def test_memory_peaks_sit_above_the_interpreter_floor(results: dict[str, Result]) -> None:
    table = results["memory"].tables[0]
    floor = float(table.rows[0][2])
    assert floor > 10  # MB: an interpreter with boto3 and Powertools loaded
    for row in table.rows[1:]:
        assert float(row[2]) >= floor
        assert float(row[4]) > 0  # a bundle was written


def test_concurrency_reports_every_requested_level(results: dict[str, Result]) -> None:
    figures = results["concurrency"].figures
    assert sorted(figures) == sorted(f"files_per_s[c={c}]" for c in SMOKE.concurrencies)
    assert all(v > 0 for v in figures.values())


def test_batched_claims_make_fewer_dynamodb_calls_than_the_baseline(results: dict[str, Result]) -> None:
    figures = results["overhead"].figures
    (files,) = SMOKE.overhead_batches
    batched = figures[f"dynamodb_calls[Aggregator.run, batched claims, {files}]"]
    baseline = figures[f"dynamodb_calls[baseline: Aggregator.run, one DynamoDB call per file per step, {files}]"]
    assert 0 < batched < baseline


def test_coldstart_measures_the_zip_and_its_invocations(results: dict[str, Result]) -> None:
    result = results["coldstart"]
    figures = result.figures
    assert 0 < figures["zip_bytes"] < figures["unzipped_bytes"]
    assert figures["import_ms"] > 0
    assert figures["first_invocation_ms"] > 0
    assert figures["second_invocation_ms"] > 0
    assert figures["modules_imported"] > 100  # boto3, Powertools and pydantic came from the unpacked zip
    assert "import_sources_only_ms" in figures, "the zip ships bytecode, so the no-bytecode variant runs"
    (bundled, *_) = result.targets
    assert bundled.met, bundled.detail  # both invocations of every round bundled their whole batch


def test_floor_measures_the_handler_and_the_floor_on_the_same_batch(results: dict[str, Result]) -> None:
    figures = results["floor"].figures
    for kind in ("floor", "handler"):
        assert figures[f"{kind}_cpu_s"] > 0
        assert figures[f"{kind}_cpu_s_per_gb"] > 0
        assert figures[f"{kind}_peak_mb"] > 10  # MB: an interpreter with boto3 loaded
        assert 1.0 < figures[f"{kind}_compression_ratio"] < 10  # JSON lines with one file in ten random
    assert figures["cpu_ratio"] > 0
    assert [t.name for t in results["floor"].targets] == [
        "handler CPU <= 1.3x the floor",
        "handler peak RSS <= 120 MB for the batch",
        "handler compression ratio >= the floor's",
    ]


def test_cli_prints_sections_and_targets_and_writes_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out_file = tmp_path / "bench.json"
    assert main(["--smoke", "throughput", "--json", str(out_file)]) == 0
    printed = capsys.readouterr().out
    assert "### 1. Bundling throughput" in printed
    assert "### Targets" in printed
    payload = json.loads(out_file.read_text())
    assert payload["scale"] == "smoke"
    assert [r["name"] for r in payload["results"]] == ["throughput"]


def test_check_flag_turns_a_missed_target_into_a_failing_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    missed = Result(name="x", title="x", scale="smoke", targets=[Target("a goal", False, "figures")])
    monkeypatch.setattr("benchmarks.__main__.run", lambda names, scale: [missed])
    assert main(["--smoke", "throughput"]) == 0
    assert main(["--smoke", "--check", "throughput"]) == 1


def test_unknown_benchmark_names_are_rejected() -> None:
    with pytest.raises(SystemExit):
        main(["no-such-benchmark"])


def test_the_corpus_is_deterministic_exact_and_mixed() -> None:
    first = corpus.plan(files=50, total_bytes=2_000_000)
    again = corpus.plan(files=50, total_bytes=2_000_000)
    assert first == again
    assert corpus.total_bytes(first) == 2_000_000
    assert [f.data() for f in first[:8]] == [f.data() for f in again[:8]]
    assert all(len(f.data()) == f.size for f in first)
    kinds = {f.binary for f in first}
    assert kinds == {True, False}
    text = next(f for f in first if not f.binary).data()
    json.loads(text.splitlines()[0])  # JSON lines, at least up to the truncated tail


def test_percentile_is_nearest_rank() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(v) for v in range(1, 1001)], 99.9) == 999.0
    assert math.isnan(percentile([], 50))


def test_the_burst_accounts_for_every_file_and_for_its_cpu(results: dict[str, Result]) -> None:
    burst = results["burst"]
    (row,) = burst.tables[0].rows
    files, lost, duplicates = row[3], row[10], row[11]
    assert files == 12
    assert (lost, duplicates) == (0, 0)
    by_process = burst.tables[1]
    assert by_process.rows[-1][0] == "all"
    total = by_process.rows[-1][1]
    assert isinstance(total, float)
    assert total > 0
    assert sum(r[1] for r in by_process.rows[:-1]) == pytest.approx(total)  # type: ignore[misc]
    per_file = burst.tables[2]
    assert per_file.rows[-1][0] == "all"
    # The parts of the pipeline process, and the servers, add up to the whole.
    assert sum(r[1] for r in per_file.rows[:-1]) == pytest.approx(per_file.rows[-1][1])  # type: ignore[misc]
