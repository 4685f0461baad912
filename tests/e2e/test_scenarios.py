"""The fast subset of the end-to-end scenarios, through the same runner as ``make e2e``, on both backends.

Each test runs one scenario file against the embedded pipeline with the real handler and fails on any
violated invariant; the full set (large file, backlog, concurrency, kills, chaos) runs with
``make e2e`` (``BACKEND=local-aws`` for the second backend). Every fast scenario runs on moto and on
local-aws (LocalStack's S3 and SQS, Amazon DynamoDB Local): two independent readings of AWS. Without
local-aws installed the second set is skipped on a workstation and fails in CI, where ``make test``
installs it. Latency and memory are reported by the runner, never asserted here.
"""

from __future__ import annotations

import functools
import io
import os
from pathlib import Path

import pytest

from data_aggregator.clients import BundlePublisher
from data_aggregator.core import BuiltBundle
from data_aggregator.sandbox.backends import BACKENDS, BackendName, backend_class
from data_aggregator.sandbox.emulator import EmulatorUnavailableError
from data_aggregator.sandbox.local_aws import LocalAwsTools
from e2e_tests.cli import main
from e2e_tests.config import load_config
from e2e_tests.local import LocalTarget
from e2e_tests.runner import ScenarioResult, run_scenario

CONFIGS = Path(__file__).resolve().parents[2] / "e2e_tests" / "configs"
FAST = (
    "special-keys",
    "poison",
    "versioned-overwrite",
    "missing-object",
    "faults-smoke",
    "sns-envelope",
    "eventbridge",
    "overload",
)


def run(
    name: str, workdir: Path, *, drain_timeout_seconds: float | None = None, backend: BackendName = "moto"
) -> ScenarioResult:
    config = load_config(CONFIGS / f"{name}.json")
    if drain_timeout_seconds is not None:
        config = config.model_copy(update={"drain_timeout_seconds": drain_timeout_seconds})
    return run_scenario(config, functools.partial(LocalTarget, backend=backend), workdir, status=io.StringIO())


def require_backend(backend: BackendName) -> None:
    """local-aws must be installed in CI (``make test`` does it); elsewhere its absence is a skip."""
    if backend != "local-aws":
        return
    try:
        LocalAwsTools.locate()
    except EmulatorUnavailableError as exc:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"the local-aws backend is required in CI: {exc}")
        pytest.skip(str(exc))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", FAST)
def test_fast_scenarios_keep_every_invariant(name: str, backend: BackendName, tmp_path: Path) -> None:
    require_backend(backend)
    unfaithful = backend_class(backend).unfaithful_paths.get(load_config(CONFIGS / f"{name}.json").notification_path)
    if unfaithful is not None:
        pytest.skip(f"{backend}: {unfaithful}")
    result = run(name, tmp_path, backend=backend)
    assert result.problems == []
    figures = result.figures
    assert figures.files_delivered == figures.files_expected > 0
    assert figures.duplicates == 0
    if name == "poison":
        assert figures.dead_letters == figures.dead_letters_expected == 6
    if name in ("sns-envelope", "eventbridge"):
        assert figures.dead_letters == figures.dead_letters_expected == 1
    if name == "missing-object":
        assert figures.files_uploaded - figures.files_expected == 10
    if name == "overload":
        # Slower than its input with two receives allowed: only the poison may reach the DLQ, and the
        # run must really have deferred work (its own expectations check MessagesDeferred too).
        assert figures.dead_letters == figures.dead_letters_expected == 1
        assert (result.findings.metrics or {}).get("MessagesDeferred", 0) > 0
    if name == "faults-smoke":
        # Every rule fired exactly at its chosen calls: the faults really happened and were survived.
        config = load_config(CONFIGS / f"{name}.json")
        wanted = [len(rule.at_calls or []) for rule in config.faults]
        assert [count.injected for count in result.findings.faults] == wanted
        # Five refused Distribution writes in a row are outlasted by the publisher's conditional repeats.
        assert figures.archive_only == 0


def test_the_command_line_runs_a_scenario_and_prints_the_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--config", str(CONFIGS / "single-file.json"), "--workdir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    row = next(line for line in out.splitlines() if line.startswith("single-file "))
    assert row.split()[1:4] == ["PASS", "1/1", "1"]
    assert "RESULT: PASS - 1 of 1 scenario(s) passed" in out


def test_a_pipeline_that_acknowledges_without_publishing_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sabotage: bundles go to Archive only, yet every message is acknowledged. The runner must say so."""
    real_put = BundlePublisher.put

    def archive_only(self: BundlePublisher, bucket: str, key: str, bundle: BuiltBundle) -> None:
        if bucket != os.environ["DISTRIBUTION_BUCKET_NAME"]:
            real_put(self, bucket, key, bundle)

    monkeypatch.setattr(BundlePublisher, "put", archive_only)
    result = run("single-file", tmp_path, drain_timeout_seconds=8)  # the file never arrives: do not wait long
    assert not result.passed
    assert any("file(s) lost" in problem for problem in result.problems)
    assert any("never reached Distribution" in problem for problem in result.problems)
