"""One scenario, start to verdict, against any target: upload, deliver, drain, read everything back, judge.

The steps are the same for the emulated and the deployed pipeline; what differs (starting the
function, faults, metrics, memory) sits behind :class:`~e2e_tests.target.Target`. The runner itself
only talks to S3 and SQS as the third party, the operator and the on-premise consumer would.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from data_aggregator.config import Settings
from data_aggregator.errors import AggregatorError, ConfigError
from data_aggregator.events import parse_message
from data_aggregator.ops.bundles import scan_bundle
from data_aggregator.ops.consume import ConsumedBundle, Consumer
from data_aggregator.ops.hashing import CONTENT_SHA256_METADATA
from data_aggregator.sandbox.checks import (
    Progress,
    archive_problems,
    bucket_keys,
    queue_bodies,
    reconcile,
    wait_for_pipeline,
    whereabouts_in,
)
from data_aggregator.sandbox.harness import ConsumerLoop
from data_aggregator.sandbox.progress import StatusLine
from data_aggregator.sandbox.provision import queue_depth
from e2e_tests.config import PoisonKind, ScenarioConfig
from e2e_tests.target import Target, TargetFindings
from e2e_tests.verdict import Evidence, Figures, judge, late_problems
from e2e_tests.workload import PlannedFile, Uploader, UploadResult, expected_dead_letters, plan_files, poison_body

POLL_SECONDS = 0.5
CONSUMER_INTERVAL_SECONDS = 0.3


@dataclass(slots=True)
class ScenarioResult:
    """The verdict on one scenario and what it measured."""

    name: str
    target: str
    problems: list[str]
    figures: Figures
    findings: TargetFindings
    elapsed_seconds: float
    workdir: Path | None = None
    notes: list[str] = field(default_factory=list)

    late: list[str] = field(default_factory=list)
    """Files or poison still on their way when the run stopped waiting (part of ``problems``)."""

    @property
    def passed(self) -> bool:
        """No invariant and no expectation was violated."""
        return not self.problems

    @property
    def outcome(self) -> str:
        """PASS; LATE when the only problems are things still on their way (nothing lost, doubled or
        altered); FAIL otherwise."""
        if self.passed:
            return "PASS"
        return "LATE" if set(self.problems) <= set(self.late) else "FAIL"


def _placeholder_settings(config: ScenarioConfig) -> Settings | None:
    """The handler's limits as the scenario sets them (the buckets do not matter here)."""
    try:
        return Settings.from_env(
            {
                "ARCHIVE_BUCKET_NAME": "limits-archive",
                "DISTRIBUTION_BUCKET_NAME": "limits-distribution",
                "IDEMPOTENCY_TABLE_NAME": "limits-table",
                **config.processing.handler_env,
            }
        )
    except ConfigError:
        return None


class ScenarioRun:
    """The moving parts of one scenario against one target."""

    def __init__(self, config: ScenarioConfig, target: Target, *, status: TextIO | None = None) -> None:
        self.config = config
        self.target = target
        self.resources = target.resources
        self.clients = target.clients
        self.line = StatusLine(status or sys.stderr, every=15.0)
        self.started = time.monotonic()
        self.consumer = ConsumerLoop(
            Consumer(
                target.clients.s3,
                target.resources.distribution,
                target.workdir / "extracted",
                prefix=target.resources.bundle_prefix,
                durable=False,
            ),
            interval_seconds=CONSUMER_INTERVAL_SECONDS,
        )
        self.uploads = UploadResult()
        self.uploader: Uploader | None = None
        self.planned: list[PlannedFile] = []
        self.poison: list[tuple[PoisonKind, str]] = []
        self.stop_reason = ""

    # -- steps -----------------------------------------------------------------------------------

    def execute(self) -> tuple[Evidence, list[str]]:
        """Run the scenario; returns the evidence and notes. The target stays open for the caller."""
        config = self.config
        notes: list[str] = []
        self.planned = plan_files(config, self.target.key_prefix)
        self.consumer.start()
        try:
            if config.processing.start == "with_uploads":
                self.target.start_processing()
            self._upload()
            self._queue_copies()
            self._send_poison()
            if config.processing.start == "after_uploads":
                self.target.start_processing()
            drained = self._drain("delivering")
            new_bundles = 0
            if drained and config.redelivery.after_drain:
                before = len(self.consumer.snapshot())
                sent = self._redeliver()
                notes.append(f"delivered {sent} notification(s) again after draining")
                drained = self._drain("redelivering")
                self.consumer.poll()
                new_bundles = len(self.consumer.snapshot()) - before
        finally:
            self.target.stop_processing()
            self.consumer.stop()
        self.line.done(self._status("done"))
        return self._evidence(drained, new_bundles), notes

    def _status(self, phase: str) -> str:
        consumed = self.consumer.snapshot()
        files = sum(len(bundle.files) for bundle in consumed)
        done = self.uploader.done if self.uploader is not None else len(self.uploads.uploaded)
        return (
            f"[{self.config.name} {time.monotonic() - self.started:6.1f}s] {phase}: uploaded {done}/"
            f"{self.config.upload.total_files}  bundled {files} in {len(consumed)}  {self.target.status()}"
        )

    def _upload(self) -> None:
        spool = self.target.workdir / "upload-spool"
        spool.mkdir(parents=True, exist_ok=True)
        self.uploader = Uploader(
            self.clients.s3,
            self.resources.landing,
            threads=self.config.upload.threads,
            rate=self.config.upload.rate,
            spool_dir=spool,
        )
        worker = threading.Thread(target=self.uploader.run, args=(self.planned,), name="e2e-uploads", daemon=True)
        worker.start()
        while worker.is_alive():
            self.line.update(self._status("uploading"))
            worker.join(POLL_SECONDS)
        self.uploads = self.uploader.result

    def _send_all(self, bodies: list[str]) -> None:
        for start in range(0, len(bodies), 10):
            chunk = bodies[start : start + 10]
            self.clients.sqs.send_message_batch(
                QueueUrl=self.resources.queue_url,
                Entries=[{"Id": str(index), "MessageBody": body} for index, body in enumerate(chunk)],
            )

    def _queue_copies(self) -> None:
        """Extra notifications for every object, shuffled in with the originals (concurrent duplicates)."""
        copies = self.config.redelivery.concurrent_copies
        if not copies:
            return
        bodies = [self.target.notification_for(upload) for upload in self.uploads.expected for _ in range(copies)]
        random.Random(self.config.seed).shuffle(bodies)  # a reproducible order, not a secret
        self._send_all(bodies)

    def _send_poison(self) -> None:
        plain = {item.key for item in self.planned if item.group.keys == "regular" and len(item.sizes) == 1}
        good = next((u for u in self.uploads.expected if u.key in plain), None)
        for index, kind in enumerate(self.config.poison):
            body = poison_body(
                kind,
                index,
                self.target.run_marker,
                good=good,
                bucket=self.resources.landing,
                region=self.resources.region,
            )
            self.poison.append((kind, body))
        self._send_all([body for _, body in self.poison])

    def _redeliver(self) -> int:
        seen = self.target.notifications_seen()
        bodies = seen if seen is not None else [self.target.notification_for(u) for u in self.uploads.expected]
        self._send_all(bodies)
        return len(bodies)

    def _ours(self, bundles: list[ConsumedBundle]) -> list[ConsumedBundle]:
        """On a shared deployment, only this run's files (and bundles holding any) count."""
        if self.target.kind == "local":
            return bundles
        prefix = self.target.key_prefix
        kept = [replace(b, files=tuple(e for e in b.files if prefix in e.key)) for b in bundles]
        return [bundle for bundle in kept if bundle.files]

    def _progress(self, expected_labels: set[str]) -> Progress:
        """Files not yet delivered, the queue's depths and the DLQ's: what moves while it works."""
        consumed = self._ours(self.consumer.snapshot())
        placed = reconcile(self.uploads.expected, consumed, self.resources.landing).placements
        visible, waiting = queue_depth(self.clients, self.resources.queue_url)
        dlq, _ = queue_depth(self.clients, self.resources.dlq_url)
        return Progress(len(expected_labels - set(placed)), visible, waiting, dlq)

    def _drain(self, phase: str) -> bool:
        """Wait until everything is settled, or until nothing has moved for the scenario's drain timeout."""
        expected = set(reconcile(self.uploads.expected, [], self.resources.landing).missing)
        drained, self.stop_reason = wait_for_pipeline(
            lambda: self._progress(expected),
            dead_letters_expected=len(expected_dead_letters(self.poison)),
            stall_seconds=self.target.drain_timeout_seconds,
            tick=lambda: self.line.update(self._status(phase)),
            poll_seconds=POLL_SECONDS,
        )
        return drained

    # -- evidence --------------------------------------------------------------------------------

    def _evidence(self, drained: bool, new_bundles: int) -> Evidence:
        consumed = self._ours(self.consumer.snapshot())
        resources = self.resources
        marker = self.target.run_marker
        dlq = queue_bodies(self.clients.sqs, resources.dlq_url, hold_seconds=60)
        if self.target.kind != "local":  # a shared dead-letter queue: judge only this run's messages
            dlq = [body for body in dlq if marker in body or self.target.key_prefix in body]
        archive_only: list[str] = []
        archive_only_problems: list[str] = []
        if self.target.kind == "local":  # a deployed Archive holds every earlier run's bundles too
            consumed_keys = {bundle.key for bundle in consumed}
            archive_only = [
                key
                for key in bucket_keys(self.clients.s3, resources.archive, resources.bundle_prefix)
                if key not in consumed_keys
            ]
            archive_only_problems = self._verify_archive_only(archive_only)
        reconciliation = reconcile(self.uploads.expected, consumed, resources.landing)
        whereabouts = whereabouts_in(
            self.clients,
            queue_url=resources.queue_url,
            table=resources.table,
            uploads=self.uploads.expected,
            missing=reconciliation.missing,
            dead_letters=dlq,
            handed_back=self.target.messages_in_flight(),
        )
        return Evidence(
            reconciliation=reconciliation,
            whereabouts=whereabouts,
            stop_reason=self.stop_reason,
            lost_details=self._lost_details(whereabouts.lost),
            consumed=consumed,
            rejected=list(self.consumer.rejected),
            upload_failures=list(self.uploads.failures),
            deleted=len(self.uploads.deleted),
            archive_problems=archive_problems(self.clients.s3, resources.archive, consumed, hash_bytes=True),
            archive_only=archive_only,
            archive_only_problems=archive_only_problems,
            distribution_left=bucket_keys(self.clients.s3, resources.distribution, resources.bundle_prefix),
            queue_left=queue_depth(self.clients, resources.queue_url),
            dlq_url=resources.dlq_url,
            dead_letters=dlq,
            expected_dead_letters=expected_dead_letters(self.poison),
            new_bundles_after_redelivery=new_bundles,
            drained=drained,
        )

    def _lost_details(self, labels: list[str]) -> list[str]:
        """Where a lost file's trail ends: its claims in the table and how often the handler saw it."""
        table = self.resources.table
        if table is None:
            return []
        seen = self.target.notifications_seen() or []
        details = []
        for label in labels[:MAX_DIAGNOSED]:
            key = label.split(" (version ")[0]
            items = self.clients.dynamodb.scan(
                TableName=table,
                FilterExpression="object_key = :k",
                ExpressionAttributeValues={":k": {"S": key}},
            ).get("Items", [])
            claims = [
                {name: next(iter(value.values())) for name, value in item.items() if name in _CLAIM_FIELDS}
                for item in items
            ]
            mentions = sum(1 for body in seen if key in _keys_named(body))
            details.append(
                f"{label}: claims {claims or 'none'}; its notification reached the handler {mentions} time(s)"
            )
        return details

    def _verify_archive_only(self, keys: list[str]) -> list[str]:
        """A bundle left in Archive alone (its Distribution write failed) must still be whole."""
        problems = []
        for key in keys:
            response = self.clients.s3.get_object(Bucket=self.resources.archive, Key=key)
            expected = response.get("Metadata", {}).get(CONTENT_SHA256_METADATA)
            report = scan_bundle(response["Body"], source=f"archive {key}", expected_sha256=expected)
            if not report.ok:
                problems.append(f"archive-only bundle {key} is not valid: {'; '.join(report.problems[:2])}")
            elif report.manifest is not None and not report.manifest.files:
                problems.append(f"archive-only bundle {key} is empty")
        return problems


MAX_DIAGNOSED = 5


def _keys_named(body: str) -> set[str]:
    """The decoded keys a notification body names (none when it is not one we can read)."""
    try:
        return {obj.key for obj in parse_message(body).objects}
    except AggregatorError:
        return set()


_CLAIM_FIELDS = frozenset({"status", "owner", "bundle_key", "pending_bundle", "lease_expires_at"})

TargetFactory = Callable[[ScenarioConfig, Path], AbstractContextManager[Target]]


def run_scenario(
    config: ScenarioConfig, make_target: TargetFactory, workdir: Path, *, status: TextIO | None = None
) -> ScenarioResult:
    """Run one scenario on a fresh target and judge it."""
    started = time.monotonic()
    workdir.mkdir(parents=True, exist_ok=True)
    with make_target(config, workdir) as target:
        run = ScenarioRun(config, target, status=status)
        evidence, notes = run.execute()
    evidence.findings = target.findings()
    problems, figures = judge(config, evidence, _placeholder_settings(config))
    return ScenarioResult(
        late=late_problems(evidence),
        name=config.name,
        target=target.kind,
        problems=problems,
        figures=figures,
        findings=evidence.findings,
        elapsed_seconds=time.monotonic() - started,
        workdir=workdir,
        notes=notes + evidence.findings.notes,
    )
