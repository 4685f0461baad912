"""``data-aggregator demo``: the whole pipeline on one machine, with a verdict at the end.

The embedded emulator stands in for AWS; the real handler runs in-process behind the emulated event
source mapping; the reference consumer empties Distribution. Everything the uploader wrote is then
reconciled against what the consumer extracted: a file counts as bundled only when a verified bundle
held it with the uploader's own SHA-256, exactly once. Deliberate faults are injected so that the run
also proves the unhappy paths: a few poison messages must end in the dead-letter queue, and duplicate
notifications for already-bundled files must not produce duplicate files.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from data_aggregator.ops.consume import Consumer
from data_aggregator.sandbox.backends import DEFAULT_BACKEND, Backend, BackendName, backend_for
from data_aggregator.sandbox.checks import (
    Reconciliation,
    archive_problems,
    bucket_keys,
    percentile,
    queue_bodies,
    reconcile,
)
from data_aggregator.sandbox.emulator import Clients
from data_aggregator.sandbox.esm import EventSourceMapping, Handler, MappingSettings
from data_aggregator.sandbox.harness import (
    ConsumerLoop,
    handler_environment,
    handler_loggers_routed,
    handler_output_to,
    load_handler,
    patched_environ,
)
from data_aggregator.sandbox.harness import s3_event_body as duplicate_event
from data_aggregator.sandbox.progress import StatusLine
from data_aggregator.sandbox.provision import (
    Environment,
    QueueSettings,
    ResourceNames,
    provision,
    queue_depth,
)
from data_aggregator.sandbox.uploader import REGULAR_KEY_PREFIX, SizeMix, SyntheticUploader, UploadedFile

log = logging.getLogger(__name__)

LATENCY_TARGETS = ((0.95, 120.0), (0.999, 180.0))  # SPEC N1: landing -> Distribution
POISON_BODIES = ("this body is not JSON", '{"Records": "not a list"}', "[1, 2, 3]", '{"unexpected": "shape"}')


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """Everything ``data-aggregator demo`` lets you change."""

    rate: float = 10.0
    count: int | None = 900
    duration: float | None = None
    batch_size: int = 100
    window_seconds: float = 5.0
    function_timeout_seconds: float = 15.0
    claim_lease_seconds: int = 45
    visibility_timeout: int = 50
    max_receive_count: int = 2
    pollers: int = 1
    poison: int = 2
    duplicates: int = 6
    seed: int = 1
    mix: SizeMix = field(default_factory=SizeMix)
    drain_timeout_seconds: float = 240.0
    consumer_interval_seconds: float = 0.5
    workdir: Path | None = None
    keep_workdir: bool = False
    environment_name: str = "dev"
    backend: BackendName = DEFAULT_BACKEND

    def __post_init__(self) -> None:
        if not self.function_timeout_seconds < self.claim_lease_seconds < self.visibility_timeout:
            raise ValueError(
                "need function timeout < claim lease < visibility timeout so that a crashed invocation's "
                f"claims expire before SQS redelivers (got {self.function_timeout_seconds} s, "
                f"{self.claim_lease_seconds} s, {self.visibility_timeout} s)"
            )
        if self.poison < 0 or self.duplicates < 0:
            raise ValueError("poison and duplicates must be >= 0")
        if self.pollers < 1:
            raise ValueError("need at least one poller")
        self.mapping_settings()  # fail before the emulator starts, not half-way through a run
        QueueSettings(visibility_timeout=self.visibility_timeout, max_receive_count=self.max_receive_count)

    def mapping_settings(self, region: str = "us-east-1") -> MappingSettings:
        """The emulated event source mapping and function configuration for this run."""
        return MappingSettings(
            batch_size=self.batch_size,
            batching_window_seconds=self.window_seconds,
            function_timeout_seconds=self.function_timeout_seconds,
            region=region,
        )


@dataclass(slots=True)
class DemoReport:
    """The verdict of one demo run."""

    options: DemoOptions
    reconciliation: Reconciliation
    bundles: int = 0
    bytes_bundled: int = 0
    bytes_uploaded: int = 0
    large_files: int = 0
    odd_keys: int = 0
    archive_problems: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    upload_failures: list[str] = field(default_factory=list)
    distribution_left: int = 0
    dlq_depth: int = 0
    dlq_unexpected: list[str] = field(default_factory=list)
    invocations: int = 0
    invocation_seconds: list[float] = field(default_factory=list)
    failed_messages: int = 0
    invocation_errors: int = 0
    poison_sent: int = 0
    duplicates_sent: int = 0
    drained: bool = True
    elapsed_seconds: float = 0.0
    workdir: Path | None = None

    @property
    def problems(self) -> list[str]:
        """Every failed check, in words."""
        return self.integrity_problems + self.latency_problems

    @property
    def integrity_problems(self) -> list[str]:
        """Failed checks about the files themselves and where messages ended: anything lost, doubled,
        altered or stranded. Kept apart from latency so a slow run is never reported as a lossy one."""
        r = self.reconciliation
        found: list[str] = []
        if r.missing:
            found.append(f"{len(r.missing)} file(s) lost, e.g. {r.missing[:3]}")
        if r.duplicated:
            found.append(f"{len(r.duplicated)} file(s) delivered more than once, e.g. {r.duplicated[:3]}")
        if r.altered:
            found.append(f"{len(r.altered)} file(s) delivered with different bytes, e.g. {r.altered[:3]}")
        if r.unexpected:
            found.append(f"{len(r.unexpected)} unexpected file(s) in bundles, e.g. {r.unexpected[:3]}")
        if self.upload_failures:
            found.append(f"{len(self.upload_failures)} upload(s) to Landing failed: {self.upload_failures[:2]}")
        found.extend(f"rejected by the consumer: {item}" for item in self.rejected[:5])
        found.extend(self.archive_problems[:5])
        if self.distribution_left:
            found.append(f"{self.distribution_left} bundle(s) left unconsumed in Distribution")
        if self.dlq_depth != self.poison_sent:
            found.append(f"DLQ holds {self.dlq_depth} message(s), expected the {self.poison_sent} poison message(s)")
        found.extend(f"DLQ holds a real event: {body:.120}" for body in self.dlq_unexpected[:3])
        if not self.drained:
            found.append("the pipeline did not drain within the drain timeout")
        return found

    @property
    def latency_problems(self) -> list[str]:
        """SPEC N1 percentiles the run missed."""
        found: list[str] = []
        for fraction, target in LATENCY_TARGETS:
            measured = percentile(self.reconciliation.latencies, fraction)
            if measured > target:
                found.append(f"latency p{fraction * 100:g} is {measured:.1f} s, above the {target:g} s target")
        return found

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return not self.problems

    def render(self) -> str:
        """The closing report."""
        r = self.reconciliation
        o = self.options
        lat = r.latencies
        lines = [
            "data-aggregator demo report",
            "=" * 60,
            f"settings        rate {o.rate:g}/s, batch size {o.batch_size}, window {o.window_seconds:g} s, "
            f"timeout {o.function_timeout_seconds:g} s, visibility {o.visibility_timeout} s, "
            f"maxReceiveCount {o.max_receive_count}",
            f"elapsed         {self.elapsed_seconds:.1f} s",
            f"files uploaded  {r.uploaded} ({self.bytes_uploaded:,} bytes; {self.large_files} large, "
            f"{self.odd_keys} with awkward keys)",
            f"files bundled   {r.bundled}",
            f"files missing   {len(r.missing)}",
            f"files duplicate {len(r.duplicated)}  ({self.duplicates_sent} duplicate notifications injected)",
            f"files altered   {len(r.altered)}",
            f"bundles         {self.bundles} written and consumed, {self.bytes_bundled:,} bytes",
            f"invocations     {self.invocations} ({self.failed_messages} message failures reported, "
            f"{self.invocation_errors} failed invocations; duration p50 "
            f"{percentile(self.invocation_seconds, 0.5):.1f} s, max {max(self.invocation_seconds, default=0.0):.1f} s)",
            f"DLQ depth       {self.dlq_depth} (expected {self.poison_sent}: injected poison messages)",
            "latency         landing -> Distribution: "
            f"p50 {percentile(lat, 0.50):.1f} s, p95 {percentile(lat, 0.95):.1f} s, "
            f"p99 {percentile(lat, 0.99):.1f} s, max {max(lat, default=0.0):.1f} s "
            "(targets: p95 <= 120 s, p99.9 <= 180 s)",
            "verification    "
            + (
                "every bundle: SHA-256 = content-sha256, members = manifest, same digest in Archive"
                if not (self.rejected or self.archive_problems)
                else f"{len(self.rejected)} bundle(s) rejected, {len(self.archive_problems)} archive problem(s)"
            ),
        ]
        if self.workdir is not None:
            lines.append(f"work directory  {self.workdir} (handler log: handler.log)")
        lines.append("-" * 60)
        if self.ok:
            lines.append("RESULT: PASS - zero loss, zero duplicates, every check passed")
        else:
            lines.append("RESULT: FAIL")
            lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


def handler_settings(environment: Environment, options: DemoOptions, emulator: Backend) -> dict[str, str]:
    """The function's environment as Terraform would set it, pointed at the emulator."""
    return handler_environment(
        emulator,
        environment,
        claim_lease_seconds=options.claim_lease_seconds,
        function_timeout_seconds=options.function_timeout_seconds,
    )


class _Run:
    """One demo run's moving parts, so that the steps below stay small."""

    def __init__(
        self, options: DemoOptions, clients: Clients, environment: Environment, consumer: ConsumerLoop
    ) -> None:
        self.options = options
        self.clients = clients
        self.environment = environment
        self.consumer = consumer

    def bundled_keys(self) -> set[str]:
        return {entry.key for bundle in self.consumer.snapshot() for entry in bundle.files}

    def status(self, started: float, uploader: SyntheticUploader, esm: EventSourceMapping, planned: str) -> str:
        visible, in_flight = queue_depth(self.clients, self.environment.queue_url)
        dlq, _ = queue_depth(self.clients, self.environment.dlq_url)
        consumed = self.consumer.snapshot()
        files = sum(len(bundle.files) for bundle in consumed)
        return (
            f"[{time.monotonic() - started:6.1f}s] uploaded {len(uploader.uploaded)}/{planned}  "
            f"bundled {files}  bundles {len(consumed)}  queue {visible}+{in_flight} in flight  "
            f"invocations {esm.stats.invocations}  DLQ {dlq}"
        )

    def send_poison(self) -> int:
        for index in range(self.options.poison):
            body = POISON_BODIES[index % len(POISON_BODIES)]
            self.clients.sqs.send_message(QueueUrl=self.environment.queue_url, MessageBody=body)
        return self.options.poison

    def send_duplicates(self, uploads: Sequence[UploadedFile]) -> int:
        """Re-announce some files: the earliest (long since bundled) and the latest (maybe in flight)."""
        count = min(self.options.duplicates, len(uploads))
        ordered = sorted(uploads, key=lambda upload: upload.uploaded_at)
        chosen = ordered[: count - count // 2] + (ordered[-(count // 2) :] if count // 2 else [])
        now = datetime.now(UTC)
        for upload in chosen:
            body = duplicate_event(upload, self.environment.names.landing, self.environment.region, now)
            self.clients.sqs.send_message(QueueUrl=self.environment.queue_url, MessageBody=body)
        return len(chosen)

    def drained(self, uploads: Sequence[UploadedFile], poison: int) -> bool:
        if {upload.key for upload in uploads} - self.bundled_keys():
            return False
        visible, in_flight = queue_depth(self.clients, self.environment.queue_url)
        dlq, _ = queue_depth(self.clients, self.environment.dlq_url)
        return visible == 0 and in_flight == 0 and dlq >= poison

    def dead_letters(self) -> tuple[int, list[str]]:
        """DLQ depth and the bodies in it that are not the injected poison."""
        depth, _ = queue_depth(self.clients, self.environment.dlq_url)
        bodies = queue_bodies(self.clients.sqs, self.environment.dlq_url, hold_seconds=1)
        return depth, [body for body in bodies if body not in POISON_BODIES]

    def distribution_left(self) -> int:
        return len(bucket_keys(self.clients.s3, self.environment.names.distribution))


HandlerFactory = Callable[[Clients, Environment], Handler]
AfterRun = Callable[["DemoReport", Backend, Environment], None]


def release_emulator_bookkeeping() -> None:
    """Drop moto's list of every model object it ever created (kept for its dashboard only).

    moto tracks each instance of its models, and a DynamoDB TransactWriteItems deep-copies the whole
    table (to roll back on failure): every claim batch therefore left a full copy of the claims table
    alive, so memory grew with files x claims. The demo's in-process emulator needs none of these
    references; the live objects stay reachable through their backends.
    """
    try:
        from moto.core.model_instances import reset_model_data  # noqa: PLC0415
    except ImportError:  # pragma: no cover - the demo extra is what runs the emulator in-process
        return
    reset_model_data()


def operator_instructions(emulator: Backend, environment: Environment, workdir: Path | None) -> str:
    """How to point a second shell at a kept demo, with commands that work as written there."""
    names = environment.names
    listed = emulator.clients().s3.list_objects_v2(Bucket=names.archive, MaxKeys=1).get("Contents", [])
    sample = listed[0]["Key"] if listed else "bundles/<KEY>.tar.gz"
    exports = "\n".join(f"export {name}={value}" for name, value in sorted(emulator.environment().items()))
    target = (workdir / "consumed-again") if workdir is not None else Path("consumed-again")
    return f"""
The emulator keeps running (Ctrl-C stops it). In another shell:

{exports}
export ARCHIVE_BUCKET_NAME={names.archive}
export DISTRIBUTION_BUCKET_NAME={names.distribution}
export DLQ_URL={environment.dlq_url}

data-aggregator dlq list                          # the injected poison messages, decoded
data-aggregator verify s3://{names.archive}/{sample}
data-aggregator replay --prefix bundles/ --dry-run  # every archived bundle; drop --dry-run to copy
data-aggregator replay --key {sample}
data-aggregator consume --once --target {target}
"""


def run_demo(
    options: DemoOptions,
    *,
    make_handler: HandlerFactory | None = None,
    emulator: Backend | None = None,
    status: TextIO | None = None,
    after: AfterRun | None = None,
) -> DemoReport:
    """Run the whole pipeline once and return the verdict (the caller prints it).

    ``make_handler`` replaces the real Lambda handler (tests of the sandbox itself use a stand-in);
    ``emulator`` reuses a running emulator (give each run its own ``environment_name`` then);
    ``after`` runs once the verdict is in, while the emulator and its buckets and queues are still
    up (``demo --keep`` uses it to leave them to the operator commands).
    """
    started = time.monotonic()
    workdir = options.workdir or Path(tempfile.mkdtemp(prefix="data-aggregator-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = _run_in(
            options, workdir, started, make_handler=make_handler, emulator=emulator, status=status, after=after
        )
    except KeyboardInterrupt:
        # Everything started has been stopped on the way out; what is left is the work directory.
        if options.workdir is None and not options.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
            raise DemoInterruptedError(None) from None
        raise DemoInterruptedError(workdir) from None
    report.workdir = workdir
    if report.ok and not options.keep_workdir and options.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)
        report.workdir = None
    return report


class DemoInterruptedError(Exception):
    """The demo was interrupted (Ctrl-C); ``workdir`` is where its files were kept, None when removed."""

    def __init__(self, workdir: Path | None) -> None:
        super().__init__("interrupted")
        self.workdir = workdir


def _run_in(
    options: DemoOptions,
    workdir: Path,
    started: float,
    *,
    make_handler: HandlerFactory | None,
    emulator: Backend | None,
    status: TextIO | None,
    after: AfterRun | None = None,
) -> DemoReport:
    with ExitStack() as outer:
        if emulator is None:
            # moto runs in this process (it starts in a second); local-aws's servers are children.
            emulator = outer.enter_context(backend_for(options.backend, workdir, own_process=False))
        with ExitStack() as stack:  # the handler's environment and output routing: this run only
            handler_log = stack.enter_context((workdir / "handler.log").open("w", encoding="utf-8"))
            clients = emulator.clients()
            environment = provision(
                clients,
                ResourceNames.for_environment(options.environment_name),
                QueueSettings(
                    visibility_timeout=options.visibility_timeout, max_receive_count=options.max_receive_count
                ),
                region=emulator.region,
            )
            stack.enter_context(patched_environ(handler_settings(environment, options, emulator)))
            stack.enter_context(handler_output_to(handler_log))
            handler = make_handler(clients, environment) if make_handler else load_handler()
            stack.enter_context(handler_loggers_routed())
            report = _drive(
                options=options,
                clients=clients,
                environment=environment,
                workdir=workdir,
                handler=handler,
                status_stream=status or sys.stderr,
                started=started,
            )
        report.workdir = workdir
        if after is not None:  # the emulator is still up; stdout is the caller's again
            after(report, emulator, environment)
        return report


def _drive(
    *,
    options: DemoOptions,
    clients: Clients,
    environment: Environment,
    workdir: Path,
    handler: Handler,
    status_stream: TextIO,
    started: float,
) -> DemoReport:
    consumer = ConsumerLoop(
        Consumer(clients.s3, environment.names.distribution, workdir / "extracted", durable=False),
        interval_seconds=options.consumer_interval_seconds,
    )
    run = _Run(options, clients, environment, consumer)
    esm = EventSourceMapping(
        clients.sqs,
        environment.queue_url,
        environment.queue_arn,
        handler,
        options.mapping_settings(environment.region),
    )
    uploader = SyntheticUploader(
        clients.s3,
        environment.names.landing,
        rate=options.rate,
        count=options.count,
        duration=options.duration,
        mix=options.mix,
        seed=options.seed,
    )
    planned = str(uploader.planned) if uploader.planned is not None else "?"
    line = StatusLine(status_stream)
    upload_stop = threading.Event()
    upload_thread = threading.Thread(target=uploader.run, args=(upload_stop,), name="uploader-schedule", daemon=True)

    consumer.start()
    esm.start(options.pollers)
    try:
        return _drive_started(
            options=options,
            run=run,
            esm=esm,
            consumer=consumer,
            uploader=uploader,
            upload_thread=upload_thread,
            line=line,
            planned=planned,
            started=started,
        )
    except BaseException:  # Ctrl-C: stop every thread while the emulator still runs, then re-raise
        upload_stop.set()
        esm.stop()
        consumer.stop()
        raise


def _drive_started(
    *,
    options: DemoOptions,
    run: _Run,
    esm: EventSourceMapping,
    consumer: ConsumerLoop,
    uploader: SyntheticUploader,
    upload_thread: threading.Thread,
    line: StatusLine,
    planned: str,
    started: float,
) -> DemoReport:
    clients, environment = run.clients, run.environment
    poison = run.send_poison()
    upload_thread.start()
    while upload_thread.is_alive():
        line.update(run.status(started, uploader, esm, planned))
        release_emulator_bookkeeping()
        upload_thread.join(0.5)
    uploads = list(uploader.uploaded)
    duplicates = run.send_duplicates(uploads)

    deadline = time.monotonic() + options.drain_timeout_seconds
    drained = False
    while time.monotonic() < deadline:
        line.update(run.status(started, uploader, esm, planned))
        if run.drained(uploads, poison):
            drained = True
            break
        release_emulator_bookkeeping()
        time.sleep(0.2)
    esm.stop()
    consumer.stop()
    line.done(run.status(started, uploader, esm, planned))

    dlq_depth, dlq_unexpected = run.dead_letters()
    consumed = consumer.snapshot()
    return DemoReport(
        options=options,
        reconciliation=reconcile(uploads, consumed, environment.names.landing),
        bundles=len(consumed),
        bytes_bundled=sum(bundle.size for bundle in consumed),
        bytes_uploaded=sum(upload.size for upload in uploads),
        large_files=sum(upload.size >= options.mix.large_min for upload in uploads),
        odd_keys=sum(not upload.key.startswith(REGULAR_KEY_PREFIX) for upload in uploads),
        archive_problems=archive_problems(clients.s3, environment.names.archive, consumed, hash_bytes=False),
        rejected=list(consumer.rejected),
        upload_failures=list(uploader.failures),
        distribution_left=run.distribution_left(),
        dlq_depth=dlq_depth,
        dlq_unexpected=dlq_unexpected,
        invocations=esm.stats.invocations,
        invocation_seconds=list(esm.stats.durations),
        failed_messages=esm.stats.failed,
        invocation_errors=esm.stats.errors,
        poison_sent=poison,
        duplicates_sent=duplicates,
        drained=drained,
        elapsed_seconds=time.monotonic() - started,
    )
