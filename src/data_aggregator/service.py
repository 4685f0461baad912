"""One SQS batch, end to end: parse -> dedup -> claim -> fetch -> bundle -> publish -> commit.

The invariant everything here serves (SPEC N3): a message is acknowledged only when every object it
names is durably in both buckets, was bundled before (duplicate), no longer exists (missing), or is
not ours to bundle (test events, non-ObjectCreated records). Any other outcome fails exactly the
messages that name the affected objects, and their claims are released so the retry can succeed.

This module holds no AWS imports: its collaborators arrive as small protocols, so the same logic runs
against moto, fakes in unit tests, or real AWS.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from data_aggregator.config import Settings
from data_aggregator.core import (
    BuiltBundle,
    BundleWriter,
    ShortReadError,
    Stopwatch,
    TimeoutGuard,
    bundle_key,
    new_bundle_id,
    plan_bundles,
)
from data_aggregator.errors import (
    AggregatorError,
    BundleAbandonedError,
    ClaimHeldError,
    ClaimStoreError,
    DeadlineError,
    ObjectTooLargeError,
    PoisonMessageError,
    UploadError,
)
from data_aggregator.events import parse_message
from data_aggregator.fetch import Failed, Missing, ObjectOpener, OrderedPrefetcher, Ready
from data_aggregator.models import ClaimResult, ClaimStatus, SourceObject
from data_aggregator.naming import assign_member_names

logger = logging.getLogger(__name__)


class Claims(Protocol):
    def claim(
        self, objects: Sequence[SourceObject], *, owner: str, lease_seconds: int
    ) -> Mapping[str, ClaimResult]: ...

    def commit(self, objects: Sequence[SourceObject], *, owner: str, bundle_key: str) -> None: ...

    def release(self, objects: Sequence[SourceObject]) -> None: ...


class Publisher(Protocol):
    def put(self, bucket: str, key: str, bundle: BuiltBundle) -> None: ...


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """The parts of an SQS record the pipeline needs."""

    message_id: str
    body: str
    receive_count: int = 1


@dataclass(frozen=True, slots=True)
class BundleReport:
    key: str
    bundle_id: str
    files: int
    input_bytes: int
    size: int
    sha256: str
    build_seconds: float
    oldest_file_age_seconds: float | None


@dataclass(slots=True)
class BatchReport:
    """What happened to a batch: the failures decide the response, the counters feed metrics."""

    failures: dict[str, AggregatorError] = field(default_factory=dict)
    bundles: list[BundleReport] = field(default_factory=list)
    files_bundled: int = 0
    duplicates: int = 0
    missing: int = 0
    poison_messages: int = 0
    test_events: int = 0
    ignored_records: int = 0
    objects_too_large: int = 0
    claims_held: int = 0
    fetch_failures: int = 0
    bundles_abandoned: int = 0
    upload_failures: int = 0
    commit_failures: int = 0
    deadline_leftovers: int = 0
    records_retried: int = 0
    fences_lost: int = 0
    size_mismatches: int = 0
    claim_store_permanent_errors: int = 0
    bundles_recovered: int = 0

    @property
    def input_bytes(self) -> int:
        return sum(b.input_bytes for b in self.bundles)


class Aggregator:
    """Runs batches; holds only configuration and collaborators, no per-batch state."""

    def __init__(
        self,
        settings: Settings,
        *,
        opener: ObjectOpener,
        claims: Claims,
        publisher: Publisher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._claims = claims
        self._publisher = publisher
        self._clock = clock
        self._prefetcher = OrderedPrefetcher(
            opener,
            concurrency=settings.fetch_concurrency,
            prefetch_chunks=settings.fetch_prefetch_chunks,
            max_object_bytes=settings.max_object_bytes,
        )

    def run(
        self, messages: Sequence[InboundMessage], *, guard: TimeoutGuard, owner: str, lease_seconds: int
    ) -> BatchReport:
        batch = _Batch(self._settings, owner=owner)
        targets = batch.collect(messages)
        if not targets:
            return batch.report
        try:
            claimed = self._claim(batch, targets, lease_seconds)
            groups = plan_bundles(
                claimed,
                max_files=self._settings.max_files_per_bundle,
                max_input_bytes=self._settings.max_bundle_input_bytes,
            )
            for index, group in enumerate(groups):
                if not guard.can_start(sum(obj.size or 0 for obj in group)):
                    batch.leave_for_later([obj for rest in groups[index:] for obj in rest])
                    break
                self._bundle(batch, group, guard)
        finally:
            self._release(batch)
        return batch.report

    # -- steps

    def _claim(self, batch: _Batch, targets: dict[str, SourceObject], lease_seconds: int) -> list[SourceObject]:
        results = self._claims.claim(list(targets.values()), owner=batch.owner, lease_seconds=lease_seconds)
        claimed: list[SourceObject] = []
        for object_id, obj in targets.items():
            result = results[object_id]
            if result.status is ClaimStatus.CLAIMED:
                claimed.append(obj)
                batch.held_by_us[object_id] = obj
            elif result.status is ClaimStatus.DUPLICATE:
                batch.report.duplicates += 1
                logger.debug(
                    "duplicate skipped",
                    extra={"bucket": obj.bucket, "key": obj.key, "bundle_key": result.bundle_key},
                )
            elif result.status is ClaimStatus.HELD:
                batch.report.claims_held += 1
                batch.fail_object(
                    obj,
                    ClaimHeldError(
                        f"{obj.describe()} is being bundled by another invocation",
                        operation="claim",
                        bucket=obj.bucket,
                        key=obj.key,
                    ),
                )
            else:
                batch.fail_object(obj, result.error or ClaimStoreError("claim failed", operation="claim"))
        return claimed

    def _bundle(self, batch: _Batch, group: list[SourceObject], guard: TimeoutGuard) -> None:
        """Build one bundle from a planned group and publish it; every object ends settled."""
        settings = self._settings
        created_at = datetime.fromtimestamp(self._clock(), tz=UTC)
        bundle_id = new_bundle_id(created_at)
        names = assign_member_names([(obj.key, obj.object_id) for obj in group])
        added: list[SourceObject] = []
        stopwatch = Stopwatch()
        with (
            BundleWriter(
                bundle_id=bundle_id,
                created_at=created_at,
                compression_level=settings.compression_level,
                compression_threads=settings.compression_threads,
                spool_memory_bytes=settings.spool_memory_bytes,
            ) as writer,
            self._prefetcher.stream(group) as outcomes,
        ):
            for index, outcome in enumerate(outcomes):
                if isinstance(outcome, Missing):
                    batch.missing(outcome.obj, outcome.reason)
                elif isinstance(outcome, Failed):
                    batch.fetch_failed(outcome.obj, outcome.error)
                elif not guard.can_start(writer.input_bytes + outcome.size):
                    batch.leave_for_later(group[index:])
                    break
                else:
                    error = self._add(writer, outcome, names[index])
                    if error is not None:
                        batch.report.bundles_abandoned += 1
                        batch.fail_unsettled(group, error)
                        return
                    added.append(outcome.obj)
            if not added:
                return  # everything was missing, failed or left over: never publish an empty bundle
            try:
                bundle = writer.finish()
            except OSError as exc:  # /tmp full while sealing: nothing of it may be published
                batch.report.bundles_abandoned += 1
                batch.fail_unsettled(
                    group, BundleAbandonedError(f"bundle abandoned: {exc}", operation="bundle", cause=exc)
                )
                return
        key = bundle_key(settings.bundle_prefix, created_at, bundle_id)
        try:
            published = self._publish(batch, key, bundle, added)
        finally:
            bundle.close()
        if published:
            batch.report.bundles.append(
                BundleReport(
                    key=key,
                    bundle_id=bundle_id,
                    files=len(added),
                    input_bytes=bundle.input_bytes,
                    size=bundle.size,
                    sha256=bundle.sha256_hex,
                    build_seconds=stopwatch.elapsed(),
                    oldest_file_age_seconds=_oldest_age(added, self._clock()),
                )
            )

    def _add(self, writer: BundleWriter, outcome: Ready, member: str) -> BundleAbandonedError | None:
        """Stream one member in; an error means its stream broke for good and the bundle must go."""
        # Record what was actually read: the version and ETag of the response, not only of the event.
        source = replace(
            outcome.obj,
            version_id=outcome.version_id or outcome.obj.version_id,
            etag=outcome.etag or outcome.obj.etag,
        )
        try:
            writer.add(source, member=member, size=outcome.size, chunks=outcome.chunks)
        except (AggregatorError, ShortReadError, OSError) as exc:
            # The member's header (with its size) is already in the tar: the bundle cannot be saved.
            return BundleAbandonedError(
                f"bundle abandoned: {exc}", operation="bundle", bucket=source.bucket, key=source.key, cause=exc
            )
        return None

    def _publish(self, batch: _Batch, key: str, bundle: BuiltBundle, added: list[SourceObject]) -> bool:
        settings = self._settings
        try:
            self._publisher.put(settings.archive_bucket_name, key, bundle)  # authoritative copy first (R5)
            self._publisher.put(settings.distribution_bucket_name, key, bundle)
        except UploadError as exc:
            batch.report.upload_failures += 1
            for obj in added:
                batch.fail_object(obj, exc)
            return False
        for obj in added:
            batch.held_by_us.pop(obj.object_id, None)  # durable now: never release these claims
        batch.report.files_bundled += len(added)
        logger.info(
            "bundle published",
            extra={
                "bundle_key": key,
                "files": len(added),
                "input_bytes": bundle.input_bytes,
                "bundle_bytes": bundle.size,
                "sha256": bundle.sha256_hex,
            },
        )
        try:
            self._claims.commit(added, owner=batch.owner, bundle_key=key)
        except ClaimStoreError as exc:
            # The files are durably in both buckets, so the messages are acknowledged; the claims stay
            # IN_PROGRESS until their lease expires, after which a duplicate notification would bundle
            # a second copy. A duplicate, never a loss.
            batch.report.commit_failures += 1
            logger.error(  # noqa: TRY400 - the cause is in the context; no traceback noise
                "commit failed after publishing; duplicates possible", extra=exc.context()
            )
        return True

    def _release(self, batch: _Batch) -> None:
        """Give back every claim that did not end in a published bundle, so a retry can take it."""
        if not batch.held_by_us:
            return
        leftovers = list(batch.held_by_us.values())
        batch.held_by_us.clear()
        try:
            self._claims.release(leftovers)
        except ClaimStoreError as exc:
            # Not a loss: these messages already fail, and the leases expire before redelivery.
            logger.warning("releasing claims failed; leases will expire", extra=exc.context())


def _oldest_age(objects: Sequence[SourceObject], now: float) -> float | None:
    times = [t.timestamp() for obj in objects if (t := obj.event_datetime) is not None]
    return max(0.0, now - min(times)) if times else None


class _Batch:
    """Per-batch bookkeeping: which messages wait on which objects, and which claims we still hold."""

    def __init__(self, settings: Settings, *, owner: str) -> None:
        self.settings = settings
        self.owner = owner
        self.report = BatchReport()
        self.waiting: dict[str, list[str]] = defaultdict(list)
        self.held_by_us: dict[str, SourceObject] = {}  # claimed and not yet published
        self.settled: set[str] = set()  # claimed objects with a verdict (missing, failed, left over)

    def collect(self, messages: Sequence[InboundMessage]) -> dict[str, SourceObject]:
        """Parse every message; return the unique objects to claim, in first-seen order."""
        targets: dict[str, SourceObject] = {}
        for message in messages:
            if message.receive_count > 1:
                self.report.records_retried += 1
            try:
                parsed = parse_message(message.body)
            except PoisonMessageError as exc:
                self._poison(message.message_id, exc)
                continue
            if parsed.is_test_event:
                self.report.test_events += 1
                continue
            self.report.ignored_records += parsed.ignored_records
            if (problem := parsed.poison_error()) is not None:
                self._poison(message.message_id, problem)
            for obj in parsed.objects:
                if obj.size is not None and obj.size > self.settings.max_object_bytes:
                    self.report.objects_too_large += 1
                    self.fail_message(message.message_id, _too_large(obj, self.settings.max_object_bytes))
                    continue
                object_id = obj.object_id
                if object_id in targets:
                    self.report.duplicates += 1
                else:
                    targets[object_id] = obj
                self.waiting[object_id].append(message.message_id)
        return targets

    def fail_message(self, message_id: str, error: AggregatorError) -> None:
        if message_id not in self.report.failures:
            self.report.failures[message_id] = error
            if error.retryable:
                logger.warning("message failed; SQS redelivers it", extra={"message_id": message_id, **error.context()})
            else:
                logger.error(
                    "message failed for good; it reaches the dead-letter queue after maxReceiveCount",
                    extra={"message_id": message_id, **error.context()},
                )

    def fail_object(self, obj: SourceObject, error: AggregatorError) -> None:
        self.settled.add(obj.object_id)
        for message_id in self.waiting.get(obj.object_id, []):
            self.fail_message(message_id, error)

    def fail_unsettled(self, objects: Sequence[SourceObject], error: AggregatorError) -> int:
        """Fail the objects of ``objects`` that have no verdict yet; returns how many."""
        count = 0
        for obj in objects:
            if obj.object_id in self.held_by_us and obj.object_id not in self.settled:
                self.fail_object(obj, error)
                count += 1
        return count

    def fetch_failed(self, obj: SourceObject, error: AggregatorError) -> None:
        if isinstance(error, ObjectTooLargeError):
            self.report.objects_too_large += 1
        else:
            self.report.fetch_failures += 1
        self.fail_object(obj, error)

    def missing(self, obj: SourceObject, reason: str) -> None:
        self.settled.add(obj.object_id)
        self.report.missing += 1
        logger.warning(
            "object missing; acknowledged without bundling",
            extra={"bucket": obj.bucket, "key": obj.key, "version_id": obj.version_id, "reason": reason},
        )

    def leave_for_later(self, objects: Sequence[SourceObject]) -> None:
        error = DeadlineError("not enough time left in this invocation; released for the next one", operation="bundle")
        self.report.deadline_leftovers += self.fail_unsettled(objects, error)

    def _poison(self, message_id: str, error: PoisonMessageError) -> None:
        self.report.poison_messages += 1
        self.fail_message(message_id, error)


def _too_large(obj: SourceObject, limit: int) -> ObjectTooLargeError:
    return ObjectTooLargeError(
        f"{obj.describe()} is {obj.size} bytes, above MAX_OBJECT_BYTES={limit}",
        operation="plan",
        bucket=obj.bucket,
        key=obj.key,
    )
