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
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

from data_aggregator.config import Settings
from data_aggregator.core import (
    BuiltBundle,
    BundleBody,
    BundleWriter,
    Deadline,
    ShortReadError,
    Stopwatch,
    StoredBundle,
    TimeoutGuard,
    bundle_key,
    current_deadline,
    new_bundle_id,
    plan_bundles,
)
from data_aggregator.errors import (
    AggregatorError,
    BundleAbandonedError,
    ClaimHeldError,
    ClaimStoreError,
    DeadlineError,
    FenceLostError,
    ObjectTooLargeError,
    PermanentStoreError,
    PoisonMessageError,
    SizeMismatchError,
    UploadError,
)
from data_aggregator.events import parse_message
from data_aggregator.fetch import Failed, Missing, ObjectOpener, OrderedPrefetcher, Ready
from data_aggregator.models import ClaimResult, ClaimStatus, SourceObject
from data_aggregator.naming import assign_member_names

logger = logging.getLogger(__name__)


class Claims(Protocol):
    """The fenced claim store (``clients.ClaimStore``); writes return the ids whose fence was lost."""

    def claim(
        self, objects: Sequence[SourceObject], *, owner: str, lease_seconds: int
    ) -> Mapping[str, ClaimResult]: ...

    def record_intent(self, objects: Sequence[SourceObject], *, owner: str, bundle_key: str) -> set[str]: ...

    def commit(self, objects: Sequence[SourceObject], *, owner: str, bundle_key: str) -> set[str]: ...

    def release(self, objects: Sequence[SourceObject], *, owner: str) -> set[str]: ...

    def hand_over(self, objects: Sequence[SourceObject], *, owner: str) -> set[str]: ...


class Publisher(Protocol):
    """The output buckets (``clients.BundlePublisher``): conditional writes and the reads recovery needs."""

    def put(self, bucket: str, key: str, bundle: BundleBody) -> None: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def ever_written(self, bucket: str, key: str) -> bool: ...

    def read(self, bucket: str, key: str) -> StoredBundle: ...


# A lease is trusted locally only while this much of it is left: it covers clock skew between
# invocations, so nobody can have taken the claim over while we still believe we hold it.
FENCE_SKEW_SECONDS = 10.0


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
            batch.lease_expires_at = self._clock() + lease_seconds
            claimed, inherited = self._claim(batch, targets, lease_seconds)
            for pending_key, objects in inherited.items():
                claimed.extend(self._recover(batch, pending_key, objects))
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
            with _finishing(current_deadline()):
                self._release(batch)
        return batch.report

    # -- steps

    def _claim(
        self, batch: _Batch, targets: dict[str, SourceObject], lease_seconds: int
    ) -> tuple[list[SourceObject], dict[str, list[SourceObject]]]:
        """Claim every target; returns the fresh claims and, by bundle key, the inherited ones."""
        results = self._claims.claim(list(targets.values()), owner=batch.owner, lease_seconds=lease_seconds)
        claimed: list[SourceObject] = []
        inherited: dict[str, list[SourceObject]] = defaultdict(list)
        for object_id, obj in targets.items():
            result = results[object_id]
            if result.status is ClaimStatus.CLAIMED:
                batch.held_by_us[object_id] = obj
                if result.pending_bundle_key:
                    inherited[result.pending_bundle_key].append(obj)
                else:
                    claimed.append(obj)
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
                error = result.error or ClaimStoreError("claim failed", operation="claim")
                batch.store_failed(error)
                batch.fail_object(obj, error)
        return claimed, inherited

    def _recover(self, batch: _Batch, key: str, objects: list[SourceObject]) -> list[SourceObject]:
        """Finish a previous owner's bundle ``key`` for claims we took over; return what still needs bundling.

        The previous owner recorded ``key`` on these claims before its first write, then died or lost
        its lease. Archive decides: without the bundle there, nothing of it was published and the objects
        are bundled afresh. With it, Distribution gets the same bytes unless it ever held that key (a
        versioned bucket keeps a delete marker once the consumer took it), and the claims are committed:
        the objects are duplicates, never bundled twice.
        """
        settings = self._settings
        batch.written.update(obj.object_id for obj in objects)  # until settled, the bundle may be out there
        try:
            if not self._publisher.exists(settings.archive_bucket_name, key):
                batch.written.difference_update(obj.object_id for obj in objects)
                logger.info("taken-over bundle never reached Archive; bundling afresh", extra={"bundle_key": key})
                return objects
            if not self._publisher.ever_written(settings.distribution_bucket_name, key):
                stored = self._publisher.read(settings.archive_bucket_name, key)
                try:
                    self._publisher.put(settings.distribution_bucket_name, key, stored)
                finally:
                    stored.close()
        except UploadError as exc:
            batch.report.upload_failures += 1
            for obj in objects:
                batch.fail_object(obj, exc)
            return []
        for obj in objects:
            batch.held_by_us.pop(obj.object_id, None)
        batch.report.bundles_recovered += 1
        batch.report.duplicates += len(objects)
        logger.info("completed a previous owner's bundle", extra={"bundle_key": key, "files": len(objects)})
        self._commit(batch, objects, key)
        return []

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
        """Intent, Archive, Distribution, commit: the order that makes every interruption recoverable."""
        settings = self._settings
        if not batch.lease_holds(self._clock()):
            # Too little of our lease is left to be sure nobody takes the claims over mid-write.
            batch.report.bundles_abandoned += 1
            too_late = DeadlineError("claim lease too close to expiry to publish", operation="publish")
            batch.fail_unsettled(added, too_late)
            return False
        try:
            lost = self._claims.record_intent(added, owner=batch.owner, bundle_key=key)
        except ClaimStoreError as exc:
            batch.store_failed(exc)
            batch.report.bundles_abandoned += 1
            batch.fail_unsettled(added, exc)
            return False
        if lost:
            # Fail every message first: an object whose claim another invocation took over is that
            # invocation's to deliver, and acknowledging it here would lose it if that attempt fails.
            batch.report.bundles_abandoned += 1
            batch.fail_unsettled(added, FenceLostError("a claim of this bundle was taken over", operation="publish"))
            self._fences_lost(batch, [obj for obj in added if obj.object_id in lost], "intent")
            return False
        batch.written.update(obj.object_id for obj in added)  # from here on: hand over, never delete
        try:
            self._publisher.put(settings.archive_bucket_name, key, bundle)  # authoritative copy first (R5)
            self._check_lease_after_archive(batch, key)
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
        with _finishing(current_deadline()):
            self._commit(batch, added, key)
        return True

    def _check_lease_after_archive(self, batch: _Batch, key: str) -> None:
        """A slow Archive write may outlast the lease: then someone may own these claims already, and
        Distribution is left to whoever completes the bundle from Archive (it is handed over)."""
        if not batch.lease_holds(self._clock()):
            raise UploadError(
                f"claim lease ran short after writing s3://{self._settings.archive_bucket_name}/{key}; handed over",
                operation="publish",
                key=key,
            )

    def _commit(self, batch: _Batch, objects: list[SourceObject], key: str) -> None:
        """COMPLETED with the bundle key; the files are durable either way, so failures only cost time.

        A commit that fails leaves the claims IN_PROGRESS with the bundle recorded on them: whoever
        takes them over later finds the bundle in both buckets and commits it, never bundling again.
        """
        try:
            lost = self._claims.commit(objects, owner=batch.owner, bundle_key=key)
        except ClaimStoreError as exc:
            batch.store_failed(exc)
            batch.report.commit_failures += 1
            logger.error(  # noqa: TRY400 - the cause is in the context; no traceback noise
                "commit failed after publishing; the next owner of these claims completes it",
                extra={"bundle_key": key, **exc.context()},
            )
            return
        if lost:
            self._fences_lost(batch, [obj for obj in objects if obj.object_id in lost], "commit")

    @staticmethod
    def _fences_lost(batch: _Batch, objects: Sequence[SourceObject], step: str) -> None:
        """Another invocation owns these claims now: never touch them again, and say so."""
        batch.report.fences_lost += len(objects)
        for obj in objects:
            batch.held_by_us.pop(obj.object_id, None)
        logger.warning(
            "claims were taken over by another invocation",
            extra={"step": step, "objects": len(objects), "owner": batch.owner},
        )

    def _release(self, batch: _Batch) -> None:
        """Give back every claim that did not end in a published bundle, so a retry can take it.

        A claim whose bundle write was attempted is handed over (lease ended, bundle key kept) rather
        than deleted: the bundle may be in Archive, and only the next owner's check can tell.
        """
        if not batch.held_by_us:
            return
        leftovers = list(batch.held_by_us.values())
        batch.held_by_us.clear()
        to_hand_over = [obj for obj in leftovers if obj.object_id in batch.written]
        to_release = [obj for obj in leftovers if obj.object_id not in batch.written]
        for objects, action in ((to_hand_over, self._claims.hand_over), (to_release, self._claims.release)):
            if not objects:
                continue
            try:
                lost = action(objects, owner=batch.owner)
            except ClaimStoreError as exc:
                # Not a loss: these messages already fail, and the leases expire before redelivery.
                batch.store_failed(exc)
                logger.warning("releasing claims failed; leases will expire", extra=exc.context())
                continue
            if lost:
                self._fences_lost(batch, [obj for obj in objects if obj.object_id in lost], "release")


def _finishing(deadline: Deadline | None) -> AbstractContextManager[None]:
    """Closing writes may use the deadline's reserve; outside an invocation there is none."""
    return deadline.finishing() if deadline is not None else nullcontext()


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
        self.written: set[str] = set()  # claims whose bundle may be in Archive: hand over, never delete
        self.lease_expires_at = 0.0
        self._store_broken = False

    def lease_holds(self, now: float) -> bool:
        """Is enough of our lease left that no other invocation can have taken our claims over?"""
        return now + FENCE_SKEW_SECONDS < self.lease_expires_at

    def store_failed(self, error: ClaimStoreError) -> None:
        """Count a table that refuses us for good once per invocation: it is a deployment problem."""
        if isinstance(error, PermanentStoreError) and not self._store_broken:
            self._store_broken = True
            self.report.claim_store_permanent_errors += 1

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
        elif isinstance(error, SizeMismatchError):
            self.report.size_mismatches += 1
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
