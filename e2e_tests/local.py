"""The local target: the embedded pipeline with the real handler, faults and kills where a scenario asks.

One emulator process per scenario (fresh buckets, queues and table, and an honest memory figure for
this process), provisioned like the dev environment; the production handler runs in this process
behind the emulated event source mapping, with the scenario's fault injector on its clients and on
the mapping's SQS client.
"""

from __future__ import annotations

import threading
import uuid
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from data_aggregator.errors import PoisonMessageError
from data_aggregator.events import parse_message
from data_aggregator.sandbox.backends import DEFAULT_BACKEND, Backend, BackendName, backend_for
from data_aggregator.sandbox.emulator import Clients
from data_aggregator.sandbox.esm import EventSourceMapping, Handler, MappingSettings
from data_aggregator.sandbox.harness import (
    eventbridge_event_body,
    handler_environment,
    handler_loggers_routed,
    handler_output_to,
    load_handler,
    metric_totals,
    patched_environ,
    s3_event_body,
    sns_envelope,
)
from data_aggregator.sandbox.provision import QueueSettings, ResourceNames, provision, queue_depth
from data_aggregator.sandbox.uploader import UploadedFile
from e2e_tests.config import ScenarioConfig
from e2e_tests.faults import FaultInjector, attached_to_handler
from e2e_tests.memory import KIB, MemoryProbe, status_kib
from e2e_tests.target import Invocations, MemoryFigures, Resources, TargetFindings

HANDLER_LOG = "handler.log"


class NotificationRecorder:
    """Passes invocations through and remembers every S3 notification body, to deliver them again later."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._bodies: dict[str, None] = {}
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: object) -> object:
        for record in event.get("Records", []):
            body = str(record.get("body", ""))
            if body in self._bodies:
                continue
            try:
                parsed = parse_message(body)
            except PoisonMessageError:  # not a notification: nothing to deliver again
                parsed = None
            if parsed is not None and parsed.objects and not parsed.problems:
                with self._lock:
                    self._bodies[body] = None
        return self._handler(event, context)

    def bodies(self) -> list[str]:
        """Every distinct notification body seen, in first-seen order."""
        with self._lock:
            return list(self._bodies)


class LocalTarget:
    """The embedded pipeline for one scenario; use as a context manager."""

    kind = "local"

    def __init__(self, config: ScenarioConfig, workdir: Path, backend: BackendName = DEFAULT_BACKEND) -> None:
        self.config = config
        self.backend = backend
        self.workdir = workdir
        self.run_marker = f"e2e-{uuid.uuid4().hex[:10]}"
        self.key_prefix = f"{config.name}/"
        self.injector: FaultInjector | None = None
        self.drain_timeout_seconds = config.drain_timeout_seconds
        self._stack = ExitStack()
        self._esm: EventSourceMapping | None = None
        self._recorder: NotificationRecorder | None = None
        self._emulator: Backend | None = None
        self._probe = MemoryProbe()
        self._started = False
        self._memory: MemoryFigures | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        try:
            self._set_up()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()

    def _set_up(self) -> None:
        config, stack = self.config, self._stack
        processing = config.processing
        self._emulator = stack.enter_context(backend_for(self.backend, self.workdir))
        self.clients: Clients = self._emulator.clients()
        environment = provision(
            self.clients,
            ResourceNames.for_environment("e2e"),
            QueueSettings(
                visibility_timeout=processing.effective_visibility_timeout,
                max_receive_count=processing.max_receive_count,
            ),
            region=self._emulator.region,
            notification_path=config.notification_path,
        )
        self._environment = environment
        names = environment.names
        self.resources = Resources(
            landing=names.landing,
            archive=names.archive,
            distribution=names.distribution,
            queue_url=environment.queue_url,
            dlq_url=environment.dlq_url,
            region=environment.region,
            bundle_prefix=processing.handler_env.get("BUNDLE_PREFIX", "bundles/"),
            table=names.table,
        )
        self.injector = FaultInjector(
            config.faults,
            config.kills,
            buckets={"landing": names.landing, "archive": names.archive, "distribution": names.distribution},
            seed=config.seed,
        )
        stack.callback(self.injector.close)
        settings = handler_environment(
            self._emulator,
            environment,
            claim_lease_seconds=processing.effective_lease_seconds,
            function_timeout_seconds=processing.function_timeout_seconds,
        )
        stack.enter_context(patched_environ({**settings, **processing.handler_env}))
        log_file = stack.enter_context((self.workdir / HANDLER_LOG).open("w", encoding="utf-8"))
        stack.enter_context(handler_output_to(log_file))
        handler = load_handler()
        stack.enter_context(handler_loggers_routed())
        stack.enter_context(attached_to_handler(self.injector))
        self._recorder = NotificationRecorder(self.injector.wrap_handler(handler))
        mapping_clients = self._emulator.clients()
        self.injector.attach(mapping_clients.sqs)
        self._esm = EventSourceMapping(
            mapping_clients.sqs,
            environment.queue_url,
            environment.queue_arn,
            self._recorder,
            MappingSettings(
                batch_size=processing.batch_size,
                batching_window_seconds=processing.window_seconds,
                function_timeout_seconds=processing.function_timeout_seconds,
                region=environment.region,
            ),
        )
        stack.callback(self.stop_processing)
        self._probe.start()
        stack.callback(self._measure)

    def _measure(self) -> None:
        peak = self._probe.stop()
        pid = self._emulator.pid if self._emulator is not None else None
        emulator_kib = status_kib("VmHWM", pid) if pid is not None else None
        self._memory = MemoryFigures(
            runner_start_mib=self._probe.start_mib,
            runner_peak_mib=peak,
            emulator_peak_mib=emulator_kib / KIB if emulator_kib is not None else None,
            exact=self._probe.exact,
        )

    # -- Target ----------------------------------------------------------------------------------

    def start_processing(self) -> None:
        """Start the emulated event source mapping's pollers."""
        if self._esm is not None and not self._started:
            self._esm.start(self.config.processing.pollers)
            self._started = True

    def stop_processing(self) -> None:
        """Stop the pollers (an invocation in progress finishes)."""
        if self._esm is not None and self._started:
            self._esm.stop()
            self._started = False

    def notification_for(self, upload: UploadedFile) -> str:
        """Shaped like the emulator's own notifications on the scenario's path, so the identity matches.

        Direct and through SNS: the URL-encoded key, ETag and versionId; through EventBridge: the key as
        stored, with the version-id.
        """
        landing, region, now = self.resources.landing, self.resources.region, datetime.now(UTC)
        environment = self._environment
        if environment.notification_path == "eventbridge":
            return eventbridge_event_body(upload, landing, region, now)
        body = s3_event_body(upload, landing, region, now)
        if environment.notification_path == "sns" and environment.topic_arn is not None:
            return sns_envelope(body, environment.topic_arn, region, now)
        return body

    def notifications_seen(self) -> list[str] | None:
        """Every notification body the handler received."""
        return self._recorder.bodies() if self._recorder is not None else None

    def messages_in_flight(self) -> list[str] | None:
        """What the emulated event source mapping handed back and has not seen acknowledged since."""
        return self._esm.handed_back() if self._esm is not None else None

    def status(self) -> str:
        """Invocations so far and the queue's depth."""
        visible, in_flight = queue_depth(self.clients, self.resources.queue_url)
        dlq, _ = queue_depth(self.clients, self.resources.dlq_url)
        invocations = self._esm.stats.invocations if self._esm is not None else 0
        return f"invocations {invocations}  queue {visible}+{in_flight} in flight  DLQ {dlq}"

    def findings(self) -> TargetFindings:
        """Everything measured here; memory only once the target has been closed."""
        stats = self._esm.stats if self._esm is not None else None
        log_path = self.workdir / HANDLER_LOG
        metrics = metric_totals(log_path.read_text(encoding="utf-8").splitlines()) if log_path.exists() else {}
        injector = self.injector
        return TargetFindings(
            invocations=Invocations(
                invocations=stats.invocations,
                failed_messages=stats.failed,
                errors=stats.errors,
                durations=list(stats.durations),
            )
            if stats is not None
            else None,
            metrics=metrics,
            faults=injector.counts() if injector is not None else [],
            killed_bundles=injector.killed_bundle_keys if injector is not None else [],
            unconfirmed_writes=injector.unconfirmed_writes if injector is not None else [],
            memory=self._memory,
        )
