"""Scenario files: every shipped one is valid, and a bad one is refused naming the field and the reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from e2e_tests.cli import load_all, main, runnable_on_aws
from e2e_tests.config import ConfigFileError, load_config

CONFIGS = Path(__file__).resolve().parents[3] / "e2e_tests" / "configs"
MINIMAL: dict[str, Any] = {
    "name": "minimal",
    "description": "one file",
    "upload": {"files": [{"count": 1, "size": 10}]},
}


def write(tmp_path: Path, content: dict[str, Any] | str, name: str = "scenario.json") -> Path:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return path


def problem(tmp_path: Path, **changes: Any) -> str:
    with pytest.raises(ConfigFileError) as caught:
        load_config(write(tmp_path, {**MINIMAL, **changes}))
    return str(caught.value)


def test_every_shipped_scenario_is_valid_and_named_after_its_file() -> None:
    paths = sorted(CONFIGS.glob("*.json"))
    assert len(paths) >= 16
    for path, config in zip(paths, load_all(paths), strict=True):
        assert config.name == path.stem


def test_the_issue_s_scenarios_are_all_there() -> None:
    names = {path.stem for path in CONFIGS.glob("*.json")}
    assert {
        "single-file",
        "batching-50",
        "large-file",
        "zero-byte",
        "concurrency",
        "compressible",
        "bundle-split",
        "idempotency",
        "backlog",
        "missing-object",
        "special-keys",
        "poison",
        "versioned-overwrite",
        "chaos",
    } <= names
    large = load_config(CONFIGS / "large-file.json")
    assert max(group.size for group in large.upload.files) >= 100_000_000
    concurrency = load_config(CONFIGS / "concurrency.json")
    assert (concurrency.upload.total_files, concurrency.upload.threads) == (400, 25)
    chaos = load_config(CONFIGS / "chaos.json")
    assert chaos.upload.total_files >= 2000
    assert {kill.point for kill in chaos.kills} == {"after_claim", "after_archive_write", "after_distribution_write"}


def test_defaults_derive_a_lease_and_visibility_that_survive_kills(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL))
    processing = config.processing
    assert processing.effective_lease_seconds == 15 + 30  # the handler's own floor
    assert processing.effective_visibility_timeout > processing.effective_lease_seconds
    assert config.local_only == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"surprise": 1}, "surprise: unknown field"),
        ({"name": "Has Spaces"}, "name: must be lower-case"),
        ({"upload": {"files": []}}, "upload.files: List should have at least 1 item"),
        (
            {"upload": {"files": [{"count": 0, "size": 1}]}},
            "upload.files.0.count: Input should be greater than or equal to 1",
        ),
        ({"upload": {"files": [{"count": 1, "size": 9, "size_max": 3}]}}, "upload.files.0: size_max must be >= size"),
        ({"poison": ["gibberish"]}, "poison.0: Input should be"),
        (
            {"notification_path": "kinesis"},
            "notification_path: Input should be 'direct', 'sns' or 'eventbridge' (got 'kinesis')",
        ),
        ({"faults": [{"call": "s3:GetObject", "kind": "throttle"}]}, "faults.0: give exactly one of 'probability'"),
        ({"faults": [{"call": "s3:GetObject", "kind": "throttle", "probability": 2}]}, "faults.0.probability"),
        (
            {"faults": [{"call": "lambda:Invoke", "kind": "throttle", "at_calls": [1]}]},
            "faults.0.call: must be 'service:Operation'",
        ),
        (
            {"faults": [{"call": "s3:PutObject", "kind": "stream_cut", "at_calls": [1]}]},
            "'stream_cut' applies to 's3:GetObject' only",
        ),
        (
            {"faults": [{"call": "dynamodb:*", "kind": "throttle", "applied": True, "at_calls": [1]}]},
            "'applied' is meaningful",
        ),
        (
            {"faults": [{"call": "sqs:*", "kind": "throttle", "bucket": "landing", "at_calls": [1]}]},
            "'bucket' filters S3 calls only",
        ),
        (
            {"processing": {"handler_env": {"MAX_FILES_PER_BUNDLE": "zero"}}},
            "processing.handler_env: invalid configuration: MAX_FILES_PER_BUNDLE",
        ),
        ({"processing": {"handler_env": {"ARCHIVE_BUCKET_NAME": "x"}}}, "ARCHIVE_BUCKET_NAME come from the target"),
        ({"processing": {"batch_size": 50, "window_seconds": 0}}, "a batch size above 10 needs a batching window"),
        (
            {"processing": {"function_timeout_seconds": 10, "visibility_timeout": 10}},
            "visibility_timeout must exceed function_timeout_seconds",
        ),
        (
            {"processing": {"visibility_timeout": 30}, "kills": [{"point": "after_claim", "at_calls": [1]}]},
            "processing.visibility_timeout must exceed the effective claim lease (45 s",
        ),
        (
            {"processing": {"pollers": 2}, "kills": [{"point": "during_fetch", "at_calls": [1]}]},
            "kills at 'during_fetch' need processing.pollers = 1",
        ),
        ({"redelivery": {"concurrent_copies": 1}}, "needs processing.start = 'after_uploads'"),
        ({"expect": {"bundles_min": 3, "bundles_max": 2}}, "expect.bundles_min must be <= expect.bundles_max"),
    ],
)
def test_a_bad_config_names_the_field_and_the_reason(tmp_path: Path, changes: dict[str, Any], expected: str) -> None:
    message = problem(tmp_path, **changes)
    assert message.startswith(str(tmp_path / "scenario.json") + ": ")
    assert expected in message


def test_unreadable_and_malformed_files_are_reported_plainly(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"not valid JSON: .* \(line 1, column 2\)"):
        load_config(write(tmp_path, "{oops"))
    with pytest.raises(ConfigFileError, match="cannot read"):
        load_config(tmp_path / "absent.json")


def test_scenario_names_must_be_unique(tmp_path: Path) -> None:
    first = write(tmp_path, MINIMAL, "a.json")
    second = write(tmp_path, MINIMAL, "b.json")
    with pytest.raises(ConfigFileError, match="name 'minimal' is already used by"):
        load_all([first, second])


def test_the_command_line_refuses_bad_input_before_running_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, {**MINIMAL, "faults": [{"call": "s3:GetObject", "kind": "nope", "at_calls": [1]}]})
    assert main(["--config", str(bad)]) == 2
    assert "faults.0.kind" in capsys.readouterr().err
    local_only = write(tmp_path, {**MINIMAL, "kills": [{"point": "after_claim", "at_calls": [1]}]}, "k.json")
    assert main(["--config", str(local_only), "--target", "aws", "--env", "dev"]) == 2
    assert "no scenario can run on a deployment: minimal: uses kills; run it with --target local" in (
        capsys.readouterr().err
    )
    assert main(["--config", str(write(tmp_path, MINIMAL, "m.json")), "--target", "aws"]) == 2
    assert "needs --env" in capsys.readouterr().err


def test_on_a_deployment_local_only_scenarios_are_skipped_and_named() -> None:
    configs = load_all(sorted(CONFIGS.glob("*.json")))
    runnable, skipped = runnable_on_aws(configs)
    names = {config.name for config in runnable}
    assert {"single-file", "poison", "backlog", "idempotency", "large-file"} <= names
    assert {"chaos", "faults-smoke", "kill-points", "bundle-split"}.isdisjoint(names)
    assert "chaos: uses faults, kills; run it with --target local" in skipped
    assert len(runnable) + len(skipped) == len(configs)


def test_the_notification_path_scenarios_use_their_path_and_awkward_keys() -> None:
    assert load_config(CONFIGS / "single-file.json").notification_path == "direct"  # the default
    for name, path in (("sns-envelope", "sns"), ("eventbridge", "eventbridge")):
        config = load_config(CONFIGS / f"{name}.json")
        assert config.notification_path == path
        assert any(group.keys == "awkward" for group in config.upload.files)
        assert any(kind.startswith(path) for kind in config.poison)


def test_a_notification_path_other_than_direct_needs_the_local_target(tmp_path: Path) -> None:
    """A deployment's routing is what Terraform built; a scenario cannot switch it."""
    config = load_config(write(tmp_path, {**MINIMAL, "notification_path": "sns"}))
    assert config.local_only == ["notification_path 'sns'"]
    direct = load_config(write(tmp_path, {**MINIMAL, "name": "plain"}, "plain.json"))
    runnable, skipped = runnable_on_aws([config, direct])
    assert runnable == [direct]
    assert skipped == ["minimal: uses notification_path 'sns'; run it with --target local"]
