"""The aws target: a scenario against a deployed environment, found from its Terraform outputs.

Not run in CI (it needs an account); the parts that decide what to do are pure and tested offline:
reading ``terraform output -json`` of the components, and planning a scenario against the deployment
(which scenarios can run there at all, how long draining may take, whether the event source mapping
must be paused for a backlog).

What it needs at run time: credentials (``--profile``) that may write to Landing from an address in
``uploader_source_cidrs``, delete there (the missing-object scenario), send to the queue (poison,
redelivery), read the dead-letter queue, read Archive, read and delete in Distribution, and enable or
disable the event source mapping (backlog scenarios). The run consumes Distribution like the
on-premise consumer does, so no other consumer may poll the environment meanwhile. Uploads go under
``e2e/<scenario>/<run id>/``; only this run's files and dead letters are judged.
"""

from __future__ import annotations

import json
import re
import subprocess  # nosec B404 - runs the repository's own infra/tf.sh
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
from botocore.config import Config

from data_aggregator.sandbox.emulator import Clients
from data_aggregator.sandbox.harness import s3_event_body
from data_aggregator.sandbox.provision import queue_depth
from data_aggregator.sandbox.uploader import UploadedFile
from e2e_tests.config import ScenarioConfig
from e2e_tests.faults import FaultInjector
from e2e_tests.target import Resources, TargetFindings

INFRA_DIR = Path(__file__).resolve().parent.parent / "infra"
STATEFUL = "02-stateful-resources"
APPLICATION = "03-application"
# Time for the last redelivery to be received and dead-lettered, beyond the receives themselves.
DEAD_LETTER_MARGIN_SECONDS = 120

CommandRunner = Callable[[Sequence[str]], str]


class UnsupportedScenarioError(ValueError):
    """The scenario needs something only the local target offers (faults, kills, handler settings)."""


class DeploymentError(RuntimeError):
    """The environment's Terraform outputs are missing or incomplete."""


def _run(argv: Sequence[str]) -> str:
    completed = subprocess.run(list(argv), check=True, capture_output=True, text=True)  # noqa: S603  # nosec B603
    return completed.stdout


def read_outputs(
    environment: str, component: str, *, infra_dir: Path = INFRA_DIR, run: CommandRunner = _run
) -> dict[str, Any]:
    """``terraform output -json`` of one component, through ``infra/tf.sh`` (which picks the backend)."""
    try:
        text = run([str(infra_dir / "tf.sh"), environment, "output", component, "--", "-json"])
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", None) or exc
        raise DeploymentError(f"reading the outputs of {component} ({environment}) failed: {detail}") from None
    try:
        outputs = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DeploymentError(f"the outputs of {component} ({environment}) are not JSON: {exc.msg}") from None
    if not isinstance(outputs, dict) or not outputs:
        raise DeploymentError(f"{component} ({environment}) has no outputs: is it applied?")
    return outputs


def read_region(environment: str, *, infra_dir: Path = INFRA_DIR) -> str:
    """``aws_region`` from ``environments/<env>/common.tfvars``."""
    path = infra_dir / "environments" / environment / "common.tfvars"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        raise DeploymentError(f"no environment {environment!r}: {path} is missing") from None
    match = re.search(r'^\s*aws_region\s*=\s*"([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise DeploymentError(f"{path} sets no aws_region")
    return match.group(1)


def _value(outputs: Mapping[str, Any], name: str, component: str) -> Any:  # noqa: ANN401 - JSON of any shape
    entry = outputs.get(name)
    if not isinstance(entry, Mapping) or "value" not in entry:
        raise DeploymentError(f"Terraform output {name!r} of {component} is missing")
    return entry["value"]


@dataclass(frozen=True, slots=True)
class Deployment:
    """The parts of a deployed environment a scenario touches."""

    environment: str
    region: str
    landing: str
    archive: str
    distribution: str
    queue_url: str
    queue_arn: str
    dlq_name: str
    visibility_timeout: int
    function_name: str
    alias_arn: str
    function_timeout: int

    @classmethod
    def from_outputs(
        cls, environment: str, region: str, stateful: Mapping[str, Any], application: Mapping[str, Any]
    ) -> Deployment:
        """Build from the JSON outputs of 02-stateful-resources and 03-application."""
        buckets = _value(stateful, "bucket_names", STATEFUL)
        if not isinstance(buckets, Mapping) or not {"landing", "archive", "distribution"} <= set(buckets):
            raise DeploymentError(f"output 'bucket_names' of {STATEFUL} lacks landing, archive or distribution")
        return cls(
            environment=environment,
            region=region,
            landing=str(buckets["landing"]),
            archive=str(buckets["archive"]),
            distribution=str(buckets["distribution"]),
            queue_url=str(_value(stateful, "queue_url", STATEFUL)),
            queue_arn=str(_value(stateful, "queue_arn", STATEFUL)),
            dlq_name=str(_value(stateful, "dlq_name", STATEFUL)),
            visibility_timeout=int(_value(stateful, "queue_visibility_timeout_seconds", STATEFUL)),
            function_name=str(_value(application, "aggregator_function_name", APPLICATION)),
            alias_arn=str(_value(application, "aggregator_alias_arn", APPLICATION)),
            function_timeout=int(_value(application, "function_timeout_seconds", APPLICATION)),
        )


def read_deployment(environment: str, *, infra_dir: Path = INFRA_DIR, run: CommandRunner = _run) -> Deployment:
    """Find a deployed environment from its Terraform outputs."""
    return Deployment.from_outputs(
        environment,
        read_region(environment, infra_dir=infra_dir),
        read_outputs(environment, STATEFUL, infra_dir=infra_dir, run=run),
        read_outputs(environment, APPLICATION, infra_dir=infra_dir, run=run),
    )


@dataclass(frozen=True, slots=True)
class AwsPlan:
    """How a scenario runs against a deployment."""

    key_prefix: str
    drain_timeout_seconds: float
    pause_mapping: bool
    notes: list[str] = field(default_factory=list)


def plan(config: ScenarioConfig, deployment: Deployment, *, max_receive_count: int, run_id: str) -> AwsPlan:
    """Decide what the run does; raises UnsupportedScenarioError for local-only scenarios."""
    needs = config.local_only
    if needs:
        raise UnsupportedScenarioError(f"scenario {config.name!r} uses {', '.join(needs)}: run it with --target local")
    notes = [
        "batch size, window, timeouts and receive count are the deployment's; processing.* of the config "
        "describes the local emulation only"
    ]
    drain = config.drain_timeout_seconds
    if config.dead_letters_expected:
        # Poison is dead-lettered only after maxReceiveCount receives, one visibility timeout apart.
        needed = deployment.visibility_timeout * max_receive_count + DEAD_LETTER_MARGIN_SECONDS
        if needed > drain:
            notes.append(
                f"drain timeout raised to {needed} s: poison reaches the DLQ after {max_receive_count} receives "
                f"{deployment.visibility_timeout} s apart"
            )
            drain = float(needed)
    if config.redelivery.after_drain:
        drain = max(drain, float(deployment.function_timeout * 2 + DEAD_LETTER_MARGIN_SECONDS))
    if config.expect.peak_rss_growth_mib_max is not None:
        notes.append("the memory bound is checked on the local target only")
    if config.expect.metrics or config.expect.metrics_at_least:
        notes.append("handler metrics live in CloudWatch: expect.metrics is checked on the local target only")
    return AwsPlan(
        key_prefix=f"e2e/{config.name}/{run_id}/",
        drain_timeout_seconds=drain,
        pause_mapping=config.processing.start == "after_uploads",
        notes=notes,
    )


def max_receive_count_of(redrive_policy: str | None) -> int:
    """maxReceiveCount from a queue's RedrivePolicy attribute (1 when there is none)."""
    if not redrive_policy:
        return 1
    return int(json.loads(redrive_policy).get("maxReceiveCount", 1))


class AwsTarget:
    """A deployed environment for one scenario; use as a context manager."""

    kind = "aws"
    injector: FaultInjector | None = None

    def __init__(self, config: ScenarioConfig, workdir: Path, deployment: Deployment, *, profile: str | None) -> None:
        self.check(config)
        self.config = config
        self.workdir = workdir
        self.deployment = deployment
        self.run_marker = f"e2e-{uuid.uuid4().hex[:10]}"
        session = boto3.session.Session(profile_name=profile, region_name=deployment.region)
        retries = Config(retries={"mode": "standard", "max_attempts": 8}, max_pool_connections=32)
        self.clients = Clients(
            s3=session.client("s3", config=retries),
            sqs=session.client("sqs", config=retries),
            dynamodb=session.client("dynamodb", config=retries),
        )
        self._lambda = session.client("lambda", config=retries)
        dlq_url = self.clients.sqs.get_queue_url(QueueName=deployment.dlq_name)["QueueUrl"]
        attributes = self.clients.sqs.get_queue_attributes(
            QueueUrl=deployment.queue_url, AttributeNames=["RedrivePolicy"]
        )["Attributes"]
        self.plan = plan(
            config,
            deployment,
            max_receive_count=max_receive_count_of(attributes.get("RedrivePolicy")),
            run_id=self.run_marker,
        )
        self.key_prefix = self.plan.key_prefix
        self.drain_timeout_seconds = self.plan.drain_timeout_seconds
        self.resources = Resources(
            landing=deployment.landing,
            archive=deployment.archive,
            distribution=deployment.distribution,
            queue_url=deployment.queue_url,
            dlq_url=dlq_url,
            region=deployment.region,
        )
        self._mapping_uuid: str | None = None
        self._paused = False

    @staticmethod
    def check(config: ScenarioConfig) -> None:
        """Refuse, before anything runs, a scenario that needs the local target."""
        if config.local_only:
            raise UnsupportedScenarioError(
                f"scenario {config.name!r} uses {', '.join(config.local_only)}: run it with --target local"
            )

    def __enter__(self) -> Self:
        if self.plan.pause_mapping:
            self._set_mapping(enabled=False)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._paused:
            self._set_mapping(enabled=True)

    def _set_mapping(self, *, enabled: bool) -> None:
        if self._mapping_uuid is None:
            mappings = self._lambda.list_event_source_mappings(
                FunctionName=self.deployment.alias_arn, EventSourceArn=self.deployment.queue_arn
            )["EventSourceMappings"]
            if not mappings:
                raise DeploymentError(f"no event source mapping from {self.deployment.queue_arn} found")
            self._mapping_uuid = mappings[0]["UUID"]
        self._lambda.update_event_source_mapping(UUID=self._mapping_uuid, Enabled=enabled)
        self._paused = not enabled
        wanted = "Enabled" if enabled else "Disabled"
        for _ in range(60):  # the state change takes a few seconds
            state = self._lambda.get_event_source_mapping(UUID=self._mapping_uuid)["State"]
            if state == wanted:
                return
            time.sleep(2)

    def start_processing(self) -> None:
        """Re-enable the event source mapping if a backlog scenario paused it."""
        if self._paused:
            self._set_mapping(enabled=True)

    def stop_processing(self) -> None:
        """Nothing to stop: the deployed mapping keeps running."""

    def notification_for(self, upload: UploadedFile) -> str:
        """Real S3 notifications carry the versionId, which is part of the object's identity."""
        return s3_event_body(upload, self.resources.landing, self.resources.region, datetime.now(UTC))

    def notifications_seen(self) -> list[str] | None:
        """Unknown: the function runs in AWS."""
        return None

    def messages_in_flight(self) -> list[str] | None:
        """Unknown: Lambda's own event source mapping holds them."""
        return None

    def status(self) -> str:
        """The queue's depth."""
        visible, in_flight = queue_depth(self.clients, self.resources.queue_url)
        dlq, _ = queue_depth(self.clients, self.resources.dlq_url)
        return f"queue {visible}+{in_flight} in flight  DLQ {dlq}"

    def findings(self) -> TargetFindings:
        """Only notes: metrics live in CloudWatch, the function's memory in its REPORT lines."""
        return TargetFindings(notes=list(self.plan.notes))
