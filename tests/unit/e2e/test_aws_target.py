"""The aws target's offline parts: finding a deployment from Terraform outputs and planning a scenario on it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from e2e_tests.aws import (
    AwsTarget,
    Deployment,
    DeploymentError,
    UnsupportedScenarioError,
    max_receive_count_of,
    plan,
    read_deployment,
    read_outputs,
)
from e2e_tests.config import ScenarioConfig


def out(value: Any) -> dict[str, Any]:
    return {"sensitive": False, "type": "string", "value": value}


STATEFUL = {
    "bucket_names": out(
        {"landing": "da-dev-landing", "archive": "da-dev-archive", "distribution": "da-dev-dist", "access_logs": "x"}
    ),
    "queue_url": out("https://sqs.eu-west-1.amazonaws.com/123456789012/da-dev-events"),
    "queue_arn": out("arn:aws:sqs:eu-west-1:123456789012:da-dev-events"),
    "dlq_name": out("da-dev-events-dlq"),
    "queue_visibility_timeout_seconds": out(420),
}
APPLICATION = {
    "aggregator_function_name": out("da-dev-aggregator"),
    "aggregator_alias_arn": out("arn:aws:lambda:eu-west-1:123456789012:function:da-dev-aggregator:live"),
    "function_timeout_seconds": out(60),
}


def scenario(**changes: Any) -> ScenarioConfig:
    base: dict[str, Any] = {"name": "s", "description": "d", "upload": {"files": [{"count": 3, "size": 10}]}}
    return ScenarioConfig.model_validate({**base, **changes})


def infra(tmp_path: Path, region: str = "eu-west-1") -> Path:
    env = tmp_path / "environments" / "dev"
    env.mkdir(parents=True)
    (env / "common.tfvars").write_text(f'project     = "data-aggregator"\naws_region  = "{region}"\n')
    return tmp_path


def test_a_deployment_is_read_through_tf_sh_for_both_components(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def terraform(argv: Sequence[str]) -> str:
        calls.append(list(argv))
        return json.dumps(STATEFUL if "02-stateful-resources" in argv else APPLICATION)

    deployment = read_deployment("dev", infra_dir=infra(tmp_path), run=terraform)
    assert calls == [
        [str(tmp_path / "tf.sh"), "dev", "output", "02-stateful-resources", "--", "-json"],
        [str(tmp_path / "tf.sh"), "dev", "output", "03-application", "--", "-json"],
    ]
    assert deployment == Deployment(
        environment="dev",
        region="eu-west-1",
        landing="da-dev-landing",
        archive="da-dev-archive",
        distribution="da-dev-dist",
        queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/da-dev-events",
        queue_arn="arn:aws:sqs:eu-west-1:123456789012:da-dev-events",
        dlq_name="da-dev-events-dlq",
        visibility_timeout=420,
        function_name="da-dev-aggregator",
        alias_arn="arn:aws:lambda:eu-west-1:123456789012:function:da-dev-aggregator:live",
        function_timeout=60,
    )


def test_missing_or_broken_outputs_say_what_is_wrong(tmp_path: Path) -> None:
    incomplete = {k: v for k, v in STATEFUL.items() if k != "dlq_name"}
    with pytest.raises(DeploymentError, match="Terraform output 'dlq_name' of 02-stateful-resources is missing"):
        Deployment.from_outputs("dev", "eu-west-1", incomplete, APPLICATION)
    no_landing = {**STATEFUL, "bucket_names": out({"archive": "a", "distribution": "d"})}
    with pytest.raises(DeploymentError, match="lacks landing, archive or distribution"):
        Deployment.from_outputs("dev", "eu-west-1", no_landing, APPLICATION)
    with pytest.raises(DeploymentError, match="has no outputs: is it applied"):
        read_outputs("dev", "03-application", infra_dir=tmp_path, run=lambda _argv: "{}")
    with pytest.raises(DeploymentError, match="are not JSON"):
        read_outputs("dev", "03-application", infra_dir=tmp_path, run=lambda _argv: "No outputs found")
    with pytest.raises(DeploymentError, match="no environment 'qa'"):
        read_deployment("qa", infra_dir=infra(tmp_path), run=lambda _argv: "{}")


def deployment() -> Deployment:
    return Deployment.from_outputs("dev", "eu-west-1", STATEFUL, APPLICATION)


def test_a_plan_keeps_the_run_apart_and_waits_as_long_as_the_deployment_needs() -> None:
    simple = plan(scenario(), deployment(), max_receive_count=10, run_id="e2e-abc")
    assert simple.key_prefix == "e2e/s/e2e-abc/"
    assert simple.drain_timeout_seconds == 300.0
    assert not simple.pause_mapping

    poison = plan(scenario(poison=["not_json", "test_event"]), deployment(), max_receive_count=10, run_id="r")
    assert poison.drain_timeout_seconds == 420 * 10 + 120  # ten receives, one visibility timeout apart
    assert any("drain timeout raised to 4320 s" in note for note in poison.notes)
    only_acknowledged = plan(scenario(poison=["test_event"]), deployment(), max_receive_count=10, run_id="r")
    assert only_acknowledged.drain_timeout_seconds == 300.0

    backlog = plan(scenario(processing={"start": "after_uploads"}), deployment(), max_receive_count=3, run_id="r")
    assert backlog.pause_mapping

    measured = plan(scenario(expect={"metrics": {"FilesBundled": 3}}), deployment(), max_receive_count=3, run_id="r")
    assert any("expect.metrics is checked on the local target only" in note for note in measured.notes)


def test_local_only_scenarios_are_refused_with_the_reason() -> None:
    kills = scenario(kills=[{"point": "after_claim", "at_calls": [1]}], processing={"handler_env": {"LOG_LEVEL": "X"}})
    with pytest.raises(
        UnsupportedScenarioError, match=r"uses kills, processing.handler_env: run it with --target local"
    ):
        plan(kills, deployment(), max_receive_count=3, run_id="r")
    with pytest.raises(UnsupportedScenarioError, match="uses faults"):
        AwsTarget.check(scenario(faults=[{"call": "s3:GetObject", "kind": "throttle", "at_calls": [1]}]))


def test_the_receive_count_comes_from_the_redrive_policy() -> None:
    assert max_receive_count_of('{"deadLetterTargetArn": "arn", "maxReceiveCount": "10"}') == 10
    assert max_receive_count_of(None) == 1
