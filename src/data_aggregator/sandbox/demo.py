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
    Progress,
    archive_problems,
    bucket_keys,
    queue_bodies,
    reconcile,
    wait_for_pipeline,
    whereabouts_in,
)
from data_aggregator.sandbox.demo_report import DemoReport
from data_aggregator.sandbox.emulator import Clients
from data_aggregator.sandbox.esm import EventSourceMapping, Handler, MappingSettings
from data_aggregator.sandbox.harness import (
    ConsumerLoop,
    handler_environment,
    handler_loggers_routed,
    handler_output_to,
    load_handler,
    metric_totals,
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
    stall_timeout_seconds: float | None = None
    """Give up waiting once nothing has moved for this long (default: ``default_stall_seconds``)."""
    drain_timeout_seconds: float | None = None
    """A hard limit on the wait after the last upload, however much is still moving (default: none)."""
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
        for name in ("stall_timeout_seconds", "drain_timeout_seconds"):
            value = getattr(self, name)
            if value is not None and not 0 < value < float("inf"):
                raise ValueError(
                    f"{name.removesuffix('_seconds').replace('_', ' ')} must be a positive number of seconds"
                )
        self.mapping_settings()  # fail before the emulator starts, not half-way through a run
        QueueSettings(visibility_timeout=self.visibility_timeout, max_receive_count=self.max_receive_count)

    @property
    def default_stall_seconds(self) -> float:
        """Long enough for a handed-back message to come back and be processed: two visibility
        timeouts, a function timeout and a batching window, and never under two minutes."""
        return max(120.0, 2 * self.visibility_timeout + self.function_timeout_seconds + self.window_seconds)

    @property
    def effective_stall_seconds(self) -> float:
        return self.stall_timeout_seconds or self.default_stall_seconds

    def mapping_settings(self, region: str = "us-east-1") -> MappingSettings:
        """The emulated event source mapping and function configuration for this run."""
        return MappingSettings(
            batch_size=self.batch_size,
            batching_window_seconds=self.window_seconds,
            function_timeout_seconds=self.function_timeout_seconds,
            region=region,
        )


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

    def progress(self, expected: set[str]) -> Progress:
        """What moves while the pipeline works: files delivered, the queue's depths, the DLQ's depth."""
        visible, waiting = queue_depth(self.clients, self.environment.queue_url)
        dlq, _ = queue_depth(self.clients, self.environment.dlq_url)
        return Progress(len(expected - self.bundled_keys()), visible, waiting, dlq)

    def dead_letters(self) -> tuple[int, list[str]]:
        """DLQ depth and every body in it."""
        depth, _ = queue_depth(self.clients, self.environment.dlq_url)
        return depth, queue_bodies(self.clients.sqs, self.environment.dlq_url, hold_seconds=1)

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
            # moto in a child process of its own: it uses the second core instead of competing with the
            # handler for this interpreter, and its DynamoDB is serialised and rid of the per-transaction
            # table copy (sandbox.server), which made a loaded machine's claims take seconds.
            emulator = outer.enter_context(backend_for(options.backend, workdir))
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
            handler_log=workdir / "handler.log",
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
    handler_log: Path,
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

    uploaded_at = time.monotonic()
    expected = {upload.key for upload in uploads}

    def tick() -> None:
        line.update(run.status(started, uploader, esm, planned))
        release_emulator_bookkeeping()

    # Wait while anything moves; a slow machine makes this longer, never a verdict of loss.
    drained, stop_reason = wait_for_pipeline(
        lambda: run.progress(expected),
        dead_letters_expected=poison,
        stall_seconds=options.effective_stall_seconds,
        limit_seconds=options.drain_timeout_seconds,
        tick=tick,
    )
    drain_seconds = time.monotonic() - uploaded_at
    esm.stop()
    consumer.stop()
    line.done(run.status(started, uploader, esm, planned))

    dlq_depth, dead_letters = run.dead_letters()
    consumed = consumer.snapshot()
    reconciliation = reconcile(uploads, consumed, environment.names.landing)
    handler_metrics = (
        metric_totals(handler_log.read_text(encoding="utf-8").splitlines()) if handler_log.exists() else {}
    )
    return DemoReport(
        options=options,
        reconciliation=reconciliation,
        whereabouts=whereabouts_in(
            clients,
            queue_url=environment.queue_url,
            table=environment.names.table,
            uploads=uploads,
            missing=reconciliation.missing,
            dead_letters=dead_letters,
            handed_back=esm.handed_back(),
        ),
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
        dlq_unexpected=[body for body in dead_letters if body not in POISON_BODIES],
        dlq_url=environment.dlq_url,
        invocations=esm.stats.invocations,
        invocation_seconds=list(esm.stats.durations),
        failed_messages=esm.stats.failed,
        deferred_messages=int(handler_metrics.get("MessagesDeferred", 0)),
        invocation_errors=esm.stats.errors,
        poison_sent=poison,
        duplicates_sent=duplicates,
        drained=drained,
        stop_reason=stop_reason,
        upload_seconds=_upload_seconds(uploads),
        drain_seconds=drain_seconds,
        elapsed_seconds=time.monotonic() - started,
    )


def _upload_seconds(uploads: Sequence[UploadedFile]) -> float:
    times = [upload.uploaded_at for upload in uploads]
    return max(times) - min(times) if len(times) > 1 else 0.0
