"""One SQS batch, end to end: parse -> dedup -> claim -> fetch -> bundle -> publish -> commit -> defer.

The invariant everything here serves (SPEC N3): a message is acknowledged only when every object it
names is durably in both buckets, was bundled before (duplicate), no longer exists (missing), or is
not ours to bundle (test events, non-ObjectCreated records) - or when it was sent to the queue again,
unchanged, because this invocation had no time for it (deferred). Any other outcome fails exactly the
messages that name the affected objects, and their claims are released so the retry can succeed.

Work is claimed, fetched and bundled incrementally, a claim transaction at a time, and a bundle is
sealed as soon as what it holds is all the invocation can still publish: a slow claim store or a
loaded machine makes each invocation do less, never nothing (docs/design.md, "Progress in
proportion to time").

This module holds no AWS imports: its collaborators arrive as small protocols, so the same logic runs
against moto, fakes in unit tests, or real AWS.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
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
from data_aggregator.models import ClaimResult, ClaimStatus, Deferral, InboundMessage, SourceObject
from data_aggregator.naming import assign_member_names

__all__ = ["Aggregator", "BatchReport", "BundleReport", "Claims", "InboundMessage", "Publisher", "Requeue"]

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

    @property
    def items_per_request(self) -> int:
        """How many claims one request writes (the guard plans time per request, and claims a request's
        worth at a time)."""
        ...

    @property
    def requests_sent(self) -> int:
        """Requests made so far, retry rounds and takeovers included: what a call's time is divided by."""
        ...


class Publisher(Protocol):
    """The output buckets (``clients.BundlePublisher``): conditional writes and the reads recovery needs."""

    def put(self, bucket: str, key: str, bundle: BundleBody) -> None: ...

    def exists(self, bucket: str, key: str) -> bool: ...

    def ever_written(self, bucket: str, key: str) -> bool: ...

    def read(self, bucket: str, key: str) -> StoredBundle: ...


class Requeue(Protocol):
    """The source queue (``clients.MessageRequeue``): sends deferred messages again."""

    def send(self, deferrals: Sequence[Deferral]) -> set[str]:
        """Send each message again after its delay; returns the ids of those that could not be sent."""
        ...


# A lease is trusted locally only while this much of it is left: it covers clock skew between
# invocations, so nobody can have taken the claim over while we still believe we hold it.
FENCE_SKEW_SECONDS = 10.0
# SQS's longest message delay.
MAX_DELAY_SECONDS = 900


def _backoff_seconds(deferrals: int) -> int:
    """How long a deferred copy waits: at once the first time, then 1, 2, 4 ... s up to SQS's 900 s.

    A message deferred again and again meets an overload that is not passing; spacing its returns
    lets it pass (and keeps a function that cannot finish anything from spinning through the bound).
    """
    return 0 if deferrals == 0 else min(MAX_DELAY_SECONDS, 2 ** min(deferrals - 1, 10))


def _defer_seconds(messages: int) -> float:
    """What sending ``messages`` back may take: one SendMessageBatch per ten, one after another."""
    return 0.5 + 0.05 * math.ceil(messages / 10)


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
    messages_deferred: int = 0
    deferrals_refused: int = 0
    phase_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    """Wall time by step (claim, recover, bundle, intent, archive, distribution, commit, release, defer)."""

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
        requeue: Requeue | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._claims = claims
        self._publisher = publisher
        self._requeue = requeue
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
        try:
            if targets:
                batch.lease_expires_at = self._clock() + lease_seconds
                self._work(batch, list(targets.values()), guard, lease_seconds)
        finally:
            with _finishing(current_deadline()):
                for obj in targets.values():  # nothing may be acknowledged without a verdict
                    if obj.object_id not in batch.settled:
                        batch.leave_for_later([obj])
                # Release before deferring: a copy sent first could reach another invocation while our
                # claims still stand, and would then wait out our whole lease.
                with batch.timed("release"):
                    self._release_if_time_allows(batch, guard)
                with batch.timed("defer"):
                    self._settle(batch, messages)
        return batch.report

    # -- steps

    def _work(self, batch: _Batch, targets: list[SourceObject], guard: TimeoutGuard, lease_seconds: int) -> None:
        """Bundle the targets group by group, each claimed a request at a time, until time runs short."""
        startable: list[SourceObject] = []
        for obj in targets:
            if obj.size and not guard.ever_fits(obj.size) and guard.ever_fits(0):
                batch.report.objects_too_large += 1
                batch.fail_object(obj, _too_slow(obj, self._settings, guard))
            else:
                startable.append(obj)
        groups = plan_bundles(
            startable,
            max_files=self._settings.max_files_per_bundle,
            max_input_bytes=self._settings.max_bundle_input_bytes,
        )
        for index, group in enumerate(groups):
            if not self._bundle(batch, group, guard, lease_seconds):
                batch.leave_for_later([obj for rest in groups[index + 1 :] for obj in rest])
                return

    @contextmanager
    def _measured(self, guard: TimeoutGuard) -> Iterator[None]:
        """Tell the guard what each claim-store request of the block cost (a takeover or a retry round
        is a request of its own, so a call's time is divided by the requests it really made)."""
        started, before = time.monotonic(), self._claims.requests_sent
        try:
            yield
        finally:
            requests = self._claims.requests_sent - before
            if requests:
                guard.observe_transaction((time.monotonic() - started) / requests)

    def _round_trips(self, items: int) -> int:
        return math.ceil(items / self._claims.items_per_request)

    def _finish_round_trips(self, files: int) -> int:
        """Requests a bundle of ``files`` still needs once sealed: its intent and its commit, and one to
        release whatever claims are left over."""
        return 2 * self._round_trips(files) + 1

    def _bundle(self, batch: _Batch, group: list[SourceObject], guard: TimeoutGuard, lease_seconds: int) -> bool:
        """Build one bundle from a planned group, claiming as it goes, and publish it.

        Returns False when the guard stopped the work: what was added is still published, and the
        rest of the group is left for later (released if claimed, untouched if not).
        """
        settings = self._settings
        created_at = datetime.fromtimestamp(self._clock(), tz=UTC)
        bundle_id = new_bundle_id(created_at)
        # Names for the whole planned group: any subset of a unique, safe assignment stays one.
        names = dict(
            zip(
                (obj.object_id for obj in group),
                assign_member_names([(obj.key, obj.object_id) for obj in group]),
                strict=True,
            )
        )
        step = self._claims.items_per_request
        added: list[SourceObject] = []
        stopwatch = Stopwatch()
        position = 0
        completed = True
        with BundleWriter(
            bundle_id=bundle_id,
            created_at=created_at,
            compression_level=settings.compression_level,
            compression_threads=settings.compression_threads,
            spool_memory_bytes=settings.spool_memory_bytes,
        ) as writer:
            while position < len(group):
                chunk = group[position : position + step]
                next_bytes = writer.input_bytes + (chunk[0].size or 0)
                # Time to claim this chunk and still publish the bundle with all of it in.
                if not guard.can_start(next_bytes, 1 + self._finish_round_trips(len(added) + len(chunk))):
                    completed = False
                    break
                position += len(chunk)
                claimed = self._claim(batch, chunk, lease_seconds, guard)
                outcome = self._stream(
                    batch=batch, writer=writer, claimed=claimed, names=names, added=added, guard=guard
                )
                if outcome is _Streamed.ABANDONED:
                    batch.leave_for_later(group[position:])
                    return True
                if outcome is _Streamed.STOPPED:
                    completed = False
                    break
            batch.leave_for_later(group[position:])
            if not added:
                return completed  # everything was missing, failed or left over: never publish an empty bundle
            try:
                with batch.timed("bundle"):
                    bundle = writer.finish()
            except OSError as exc:  # /tmp full while sealing: nothing of it may be published
                batch.report.bundles_abandoned += 1
                batch.fail_unsettled(
                    added, BundleAbandonedError(f"bundle abandoned: {exc}", operation="bundle", cause=exc)
                )
                return completed
        key = bundle_key(settings.bundle_prefix, created_at, bundle_id)
        try:
            published = self._publish(batch, key, bundle, added, guard)
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
        return completed

    def _stream(
        self,
        *,
        batch: _Batch,
        writer: BundleWriter,
        claimed: list[SourceObject],
        names: Mapping[str, str],
        added: list[SourceObject],
        guard: TimeoutGuard,
    ) -> _Streamed:
        """Stream the claimed objects into the open bundle, one after another, while time allows."""
        if not claimed:
            return _Streamed.DONE
        with batch.timed("bundle"), self._prefetcher.stream(claimed) as outcomes:
            for index, outcome in enumerate(outcomes):
                if isinstance(outcome, Missing):
                    batch.missing(outcome.obj, outcome.reason)
                elif isinstance(outcome, Failed):
                    batch.fetch_failed(outcome.obj, outcome.error)
                elif not guard.can_start(writer.input_bytes + outcome.size, self._finish_round_trips(len(added) + 1)):
                    batch.leave_for_later(claimed[index:])
                    return _Streamed.STOPPED
                else:
                    error = self._add(writer, outcome, names[outcome.obj.object_id])
                    if error is not None:
                        batch.report.bundles_abandoned += 1
                        batch.fail_unsettled([*added, *claimed], error)
                        return _Streamed.ABANDONED
                    added.append(outcome.obj)
        return _Streamed.DONE

    def _claim(
        self, batch: _Batch, chunk: list[SourceObject], lease_seconds: int, guard: TimeoutGuard
    ) -> list[SourceObject]:
        """Claim one request's worth of objects; returns those to bundle now, previous owners' settled."""
        with batch.timed("claim"), self._measured(guard):
            results = self._claims.claim(chunk, owner=batch.owner, lease_seconds=lease_seconds)
        claimed: list[SourceObject] = []
        inherited: dict[str, list[SourceObject]] = defaultdict(list)
        for obj in chunk:
            result = results[obj.object_id]
            if result.status is ClaimStatus.CLAIMED:
                batch.held_by_us[obj.object_id] = obj
                if result.pending_bundle_key:
                    inherited[result.pending_bundle_key].append(obj)
                else:
                    claimed.append(obj)
            elif result.status is ClaimStatus.DUPLICATE:
                batch.report.duplicates += 1
                batch.settled.add(obj.object_id)
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
                        lease_expires_at=result.lease_expires_at,
                        operation="claim",
                        bucket=obj.bucket,
                        key=obj.key,
                    ),
                )
            else:
                error = result.error or ClaimStoreError("claim failed", operation="claim")
                batch.store_failed(error)
                batch.fail_object(obj, error)
        with batch.timed("recover"):
            for pending_key, objects in inherited.items():
                claimed.extend(self._recover(batch, pending_key, objects))
        return claimed

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
            batch.settled.add(obj.object_id)
        batch.report.bundles_recovered += 1
        batch.report.duplicates += len(objects)
        logger.info("completed a previous owner's bundle", extra={"bundle_key": key, "files": len(objects)})
        self._commit(batch, objects, key)
        return []

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
                f"bundle abandoned: {exc}",
                operation="bundle",
                bucket=source.bucket,
                key=source.key,
                cause=exc,
                out_of_time=isinstance(exc, AggregatorError) and exc.out_of_time,
            )
        return None

    def _publish(
        self, batch: _Batch, key: str, bundle: BuiltBundle, added: list[SourceObject], guard: TimeoutGuard
    ) -> bool:
        """Intent, Archive, Distribution, commit: the order that makes every interruption recoverable."""
        settings = self._settings
        if not batch.lease_holds(self._clock()):
            # Too little of our lease is left to be sure nobody takes the claims over mid-write.
            batch.report.bundles_abandoned += 1
            too_late = DeadlineError("claim lease too close to expiry to publish", operation="publish")
            batch.fail_unsettled(added, too_late)
            return False
        try:
            with batch.timed("intent"), self._measured(guard):
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
            with batch.timed("archive"):
                self._publisher.put(settings.archive_bucket_name, key, bundle)  # authoritative copy first (R5)
            self._check_lease_after_archive(batch, key)
            with batch.timed("distribution"):
                self._publisher.put(settings.distribution_bucket_name, key, bundle)
        except UploadError as exc:
            batch.report.upload_failures += 1
            for obj in added:
                batch.fail_object(obj, exc)
            return False
        for obj in added:
            batch.held_by_us.pop(obj.object_id, None)  # durable now: never release these claims
            batch.settled.add(obj.object_id)
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
                out_of_time=True,
            )

    def _commit(self, batch: _Batch, objects: list[SourceObject], key: str) -> None:
        """COMPLETED with the bundle key; the files are durable either way, so failures only cost time.

        A commit that fails leaves the claims IN_PROGRESS with the bundle recorded on them: whoever
        takes them over later finds the bundle in both buckets and commits it, never bundling again.
        """
        try:
            with batch.timed("commit"):
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

    def _release_if_time_allows(self, batch: _Batch, guard: TimeoutGuard) -> None:
        """Release our leftover claims unless that would leave no time to defer their messages.

        The deferral matters more: an unreleased claim only makes its message's copy wait for our lease
        to run out (it is sent with that delay), while an unsent deferral spends a receive.
        """
        deadline = current_deadline()
        leftovers = list(batch.held_by_us.values())
        if not leftovers or deadline is None or self._requeue is None or not batch.report.failures:
            self._release(batch)
            return
        written = sum(obj.object_id in batch.written for obj in leftovers)
        requests = self._round_trips(written) + self._round_trips(len(leftovers) - written)
        if deadline.budget() > requests * guard.transaction_seconds + _defer_seconds(len(batch.report.failures)):
            self._release(batch)
            return
        batch.held_by_us.clear()
        batch.still_leased(leftovers)
        logger.warning(
            "no time to release the claims left over and defer their messages; deferring them until the "
            "claims' lease runs out",
            extra={"claims": len(leftovers), "budget_seconds": round(deadline.budget(), 2)},
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
                # Not a loss: these messages fail or are deferred until the leases have run out.
                batch.store_failed(exc)
                batch.still_leased(objects)
                logger.warning("releasing claims failed; leases will expire", extra=exc.context())
                continue
            if lost:
                self._fences_lost(batch, [obj for obj in objects if obj.object_id in lost], "release")

    def _settle(self, batch: _Batch, messages: Sequence[InboundMessage]) -> None:
        """Defer what only lacked time (sent again, acknowledged), then log every failure that stands.

        A message is deferred when nothing went wrong with it but time: the guard left its objects for
        later, a call was cut by the deadline, or another live invocation holds its claim (then it comes
        back once that lease would have run out, as it does when our own claims could not be released).
        If the send succeeds and the acknowledgement is lost, SQS delivers the old message again too:
        the claims make one of the two a duplicate (docs/design.md).
        """
        report = batch.report
        deferrals: list[Deferral] = []
        now = self._clock()
        for message in messages:
            error = report.failures.get(message.message_id)
            if error is None or message.message_id in batch.blocking or self._requeue is None:
                continue
            if not self._may_defer(message, now):
                report.deferrals_refused += 1
                continue
            held_until = batch.held_until.get(message.message_id)
            delay = _backoff_seconds(message.deferrals)
            if held_until is not None:
                delay = max(delay, min(MAX_DELAY_SECONDS, max(0, math.ceil(held_until - now)) + 1))
            deferrals.append(Deferral(message, delay))
        unsent = self._requeue.send(deferrals) if deferrals and self._requeue is not None else set()
        reasons: Counter[str] = Counter()
        for deferral in deferrals:
            message_id = deferral.message.message_id
            if message_id not in unsent:
                reasons[type(report.failures.pop(message_id)).__name__] += 1
                report.messages_deferred += 1
        if reasons:
            logger.info(
                "messages deferred: sent to the queue again and acknowledged",
                extra={"deferred": report.messages_deferred, "reasons": dict(reasons)},
            )
        for message_id, error in report.failures.items():
            _log_failure(message_id, error)

    def _may_defer(self, message: InboundMessage, now: float) -> bool:
        """Within the bounds that keep deferral finite and the claims older than any copy of the message."""
        settings = self._settings
        if message.deferrals >= settings.max_deferrals:
            logger.warning(
                "message already deferred the most times allowed; it fails and SQS counts the receive",
                extra={"message_id": message.message_id, "deferrals": message.deferrals},
            )
            return False
        if message.first_sent_ms is not None and now - message.first_sent_ms / 1000 > settings.deferral_max_age_seconds:
            logger.warning(
                "message first sent longer ago than DEFERRAL_MAX_AGE_SECONDS; it fails and SQS counts the receive",
                extra={"message_id": message.message_id, "first_sent_ms": message.first_sent_ms},
            )
            return False
        return True


class _Streamed(Enum):
    """How streaming a claimed chunk into the open bundle ended."""

    DONE = "done"
    STOPPED = "stopped"  # the guard left the rest for later; what was added is still published
    ABANDONED = "abandoned"  # a stream broke for good: the bundle cannot be published


def _finishing(deadline: Deadline | None) -> AbstractContextManager[None]:
    """Closing writes may use the deadline's reserve; outside an invocation there is none."""
    return deadline.finishing() if deadline is not None else nullcontext()


def _oldest_age(objects: Sequence[SourceObject], now: float) -> float | None:
    times = [t.timestamp() for obj in objects if (t := obj.event_datetime) is not None]
    return max(0.0, now - min(times)) if times else None


def _log_failure(message_id: str, error: AggregatorError) -> None:
    if error.retryable:
        logger.warning("message failed; SQS redelivers it", extra={"message_id": message_id, **error.context()})
    else:
        logger.error(
            "message failed for good; it reaches the dead-letter queue after maxReceiveCount",
            extra={"message_id": message_id, **error.context()},
        )


def _deferrable(error: AggregatorError) -> bool:
    """Only time was missing: the guard, the deadline, or another invocation's live lease."""
    return error.out_of_time or isinstance(error, ClaimHeldError)


class _Batch:
    """Per-batch bookkeeping: which messages wait on which objects, and which claims we still hold."""

    def __init__(self, settings: Settings, *, owner: str) -> None:
        self.settings = settings
        self.owner = owner
        self.report = BatchReport()
        self.waiting: dict[str, list[str]] = defaultdict(list)
        self.held_by_us: dict[str, SourceObject] = {}  # claimed and not yet published
        self.settled: set[str] = set()  # objects with a verdict (published, duplicate, missing, failed...)
        self.written: set[str] = set()  # claims whose bundle may be in Archive: hand over, never delete
        self.blocking: set[str] = set()  # messages with a failure of their own: they fail, never deferred
        self.held_until: dict[str, float] = {}  # message -> the latest lease (another's or ours) it must outwait
        self.lease_expires_at = 0.0
        self._store_broken = False

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the block's wall time to ``phase`` (the report says where an invocation's time went)."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.report.phase_seconds[phase] += time.monotonic() - started

    def still_leased(self, objects: Sequence[SourceObject]) -> None:
        """Our claims on these could not be given back: their messages must wait for our lease to end."""
        for obj in objects:
            for message_id in self.waiting.get(obj.object_id, []):
                self.held_until[message_id] = max(self.held_until.get(message_id, 0.0), self.lease_expires_at)

    def lease_holds(self, now: float) -> bool:
        """Is enough of our lease left that no other invocation can have taken our claims over?"""
        return now + FENCE_SKEW_SECONDS < self.lease_expires_at

    def store_failed(self, error: ClaimStoreError) -> None:
        """Count a table that refuses us for good once per invocation: it is a deployment problem."""
        if isinstance(error, PermanentStoreError) and not self._store_broken:
            self._store_broken = True
            self.report.claim_store_permanent_errors += 1

    def collect(self, messages: Sequence[InboundMessage]) -> dict[str, SourceObject]:
        """Parse every message; return the unique objects to claim, in first-seen order.

        Messages deferred before come first (stable otherwise), so a message that waited once is
        among the first to be worked on next time rather than left over again.
        """
        targets: dict[str, SourceObject] = {}
        for message in sorted(messages, key=lambda m: -m.deferrals):
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
        self.report.failures.setdefault(message_id, error)
        if not _deferrable(error):
            self.blocking.add(message_id)
        if isinstance(error, ClaimHeldError) and error.lease_expires_at is not None:
            self.held_until[message_id] = max(self.held_until.get(message_id, 0.0), error.lease_expires_at)

    def fail_object(self, obj: SourceObject, error: AggregatorError) -> None:
        self.settled.add(obj.object_id)
        for message_id in self.waiting.get(obj.object_id, []):
            self.fail_message(message_id, error)

    def fail_unsettled(self, objects: Sequence[SourceObject], error: AggregatorError) -> int:
        """Fail the objects of ``objects`` we hold that have no verdict yet; returns how many."""
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
        """No time for these (claimed or not): their messages wait for a later invocation."""
        error = DeadlineError("not enough time left in this invocation; left for the next one", operation="bundle")
        for obj in objects:
            if obj.object_id not in self.settled:
                self.fail_object(obj, error)
                self.report.deadline_leftovers += 1

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


def _too_slow(obj: SourceObject, settings: Settings, guard: TimeoutGuard) -> ObjectTooLargeError:
    return ObjectTooLargeError(
        f"{obj.describe()} is {obj.size} bytes: at GUARD_BYTES_PER_SECOND={settings.guard_bytes_per_second} it "
        f"needs more than the {guard.initial_seconds:.0f} s an invocation has; raise the function timeout "
        "(or GUARD_BYTES_PER_SECOND if this function moves bytes faster)",
        operation="plan",
        bucket=obj.bucket,
        key=obj.key,
    )
