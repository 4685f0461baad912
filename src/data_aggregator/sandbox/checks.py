"""The verdicts shared by ``demo`` and the end-to-end scenarios: what was uploaded against what arrived.

A file counts as delivered only when a bundle that the reference consumer verified (whole-object
SHA-256, gzip CRC, every member against the manifest) held it with the uploader's own SHA-256. Each
check here reads the state of the emulated (or real) buckets and queues independently of the code
that wrote them, so a bug in the writer cannot hide itself.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from data_aggregator.errors import AggregatorError
from data_aggregator.events import parse_message
from data_aggregator.models import ManifestEntry
from data_aggregator.ops.consume import ConsumedBundle
from data_aggregator.ops.hashing import CONTENT_SHA256_METADATA, sha256_of_stream
from data_aggregator.sandbox.provision import queue_depth
from data_aggregator.sandbox.uploader import UploadedFile

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sqs import SQSClient

    from data_aggregator.sandbox.emulator import Clients

#: What an operator runs to send dead-lettered messages back (docs/runbooks/dlq.md).
REDRIVE_COMMAND = "data-aggregator dlq redrive --dlq {dlq}"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values): the smallest value covering ``fraction`` of them."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(round(fraction * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


def upload_label(upload: UploadedFile, versions_of_key: int) -> str:
    """How a file is named in findings: its key, plus the version when the key was written more than once."""
    return upload.key if versions_of_key <= 1 else f"{upload.key} (version {upload.version_id})"


@dataclass(slots=True)
class Reconciliation:
    """Uploads matched against the files found in verified bundles."""

    uploaded: int = 0
    bundled: int = 0
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    landed_at: list[float] = field(default_factory=list)
    """When each file in ``latencies`` was uploaded (monotonic clock, same order): latency over time."""
    placements: dict[str, list[str]] = field(default_factory=dict)
    """Label of every delivered file -> the keys of the bundles that held it (more than one: duplicated)."""

    @property
    def ok(self) -> bool:
        """No file lost, doubled, invented or changed."""
        return not (self.missing or self.duplicated or self.unexpected or self.altered)


def _match(candidates: Sequence[UploadedFile], entry: ManifestEntry) -> UploadedFile | None:
    """The upload a manifest entry stands for, among the uploads of its key.

    One candidate: that one (a wrong SHA-256 is then reported as altered). Several (a key written more
    than once): the version the entry names, else the one with the entry's bytes.
    """
    if len(candidates) == 1:
        return candidates[0]
    for upload in candidates:
        if entry.version_id is not None and upload.version_id == entry.version_id:
            return upload
    for upload in candidates:
        if upload.sha256 == entry.sha256 and upload.size == entry.size:
            return upload
    return None


def reconcile(uploaded: Sequence[UploadedFile], bundles: Sequence[ConsumedBundle], landing: str) -> Reconciliation:
    """Match every uploaded file to the bundle entries that hold it (by bucket, key, version and SHA-256)."""
    result = Reconciliation(uploaded=len(uploaded))
    by_key: dict[str, list[UploadedFile]] = defaultdict(list)
    for upload in uploaded:
        by_key[upload.key].append(upload)
    labels = {id(upload): upload_label(upload, len(by_key[upload.key])) for upload in uploaded}
    seen: Counter[str] = Counter()
    placements: dict[str, list[str]] = defaultdict(list)
    for bundle in bundles:
        for entry in bundle.files:
            candidates = by_key.get(entry.key, []) if entry.bucket == landing else []
            if not candidates:
                result.unexpected.append(f"{entry.bucket}/{entry.key}")
                continue
            match = _match(candidates, entry)
            if match is None or entry.sha256 != match.sha256 or entry.size != match.size:
                result.altered.append(entry.key)
                continue
            label = labels[id(match)]
            seen[label] += 1
            placements[label].append(bundle.key)
            if seen[label] == 1:
                result.latencies.append(max(0.0, bundle.first_seen - match.uploaded_at))
                result.landed_at.append(match.uploaded_at)
    result.bundled = len(seen)
    result.missing = sorted(label for label in labels.values() if label not in seen)
    result.duplicated = sorted(label for label, times in seen.items() if times > 1)
    result.placements = dict(placements)
    return result


def archive_problems(s3: S3Client, archive: str, bundles: Iterable[ConsumedBundle], *, hash_bytes: bool) -> list[str]:
    """Each consumed bundle must exist in Archive under the same key with the same digest (R5).

    With ``hash_bytes`` the Archive copy is streamed and hashed too, proving the bytes are the same
    rather than only the metadata that claims so.
    """
    problems: list[str] = []
    for bundle in bundles:
        try:
            if hash_bytes:
                response = s3.get_object(Bucket=archive, Key=bundle.key)
                digest = response.get("Metadata", {}).get(CONTENT_SHA256_METADATA)
                actual, _size = sha256_of_stream(response["Body"])
                if actual != bundle.sha256:
                    problems.append(f"archive copy of {bundle.key} hashes to {actual}, not {bundle.sha256}")
                    continue
            else:
                digest = s3.head_object(Bucket=archive, Key=bundle.key).get("Metadata", {}).get(CONTENT_SHA256_METADATA)
        except Exception as exc:  # reported as a failed check
            problems.append(f"archive copy of {bundle.key} unreadable: {exc}")
            continue
        if digest != bundle.sha256:
            problems.append(f"archive copy of {bundle.key} has content-sha256 {digest}, not {bundle.sha256}")
    return problems


def bucket_keys(s3: S3Client, bucket: str, prefix: str = "") -> list[str]:
    """Every current key under a prefix, sorted."""
    paginator = s3.get_paginator("list_objects_v2")
    return sorted(
        item["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=prefix) for item in page.get("Contents", [])
    )


def queue_bodies(sqs: SQSClient, queue_url: str, *, hold_seconds: int = 60, limit: int = 10_000) -> list[str]:
    """Read every message body in a queue without deleting anything.

    Long polls (one second) ask every SQS server, so an empty answer means an empty queue. Each
    received message stays invisible for ``hold_seconds`` so that it is read once; call this
    only when nothing else consumes the queue (a dead-letter queue at the end of a run).
    """
    bodies: list[str] = []
    while len(bodies) < limit:
        response = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=hold_seconds, WaitTimeSeconds=1
        )
        messages = response.get("Messages", [])
        if not messages:
            break
        bodies.extend(message["Body"] for message in messages)
    return bodies


@dataclass(slots=True)
class Whereabouts:
    """Where each file that did not reach the consumer is, as far as the run can see.

    "Lost" is kept for files with no trace anywhere: not delivered, named by no message in the event
    queue or the DLQ, claimed by nobody, and no unread message left that could name them. A file in
    the DLQ is recoverable (a redrive away); a queued or claimed one is late, not gone.
    """

    dead_lettered: list[str] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    """Named by a message still in the event queue (visible, handed back, or deferred)."""
    in_progress: list[str] = field(default_factory=list)
    """Claimed IN_PROGRESS: an invocation holds it, or the next one takes the claim over."""
    unread: list[str] = field(default_factory=list)
    """No trace, but the event queue still holds messages nobody could read when the run ended."""
    lost: list[str] = field(default_factory=list)

    @property
    def late(self) -> list[str]:
        """Files still on their way: queued, in progress, or possibly in an unread message."""
        return [*self.queued, *self.in_progress, *self.unread]

    def late_by_kind(self) -> str:
        """How the late files divide, in words: "2 still queued, 1 claimed and in progress"."""
        parts = [
            (self.queued, "still queued"),
            (self.in_progress, "claimed and in progress"),
            (self.unread, "possibly in the queue's unread messages"),
        ]
        return ", ".join(f"{len(files)} {what}" for files, what in parts if files)


def _named(bodies: Iterable[str]) -> set[tuple[str, str | None]]:
    """(key, version) of every object the notification bodies name; unreadable bodies name nothing."""
    named: set[tuple[str, str | None]] = set()
    for body in bodies:
        try:
            parsed = parse_message(body)
        except AggregatorError:
            continue
        named.update((obj.key, obj.version_id) for obj in parsed.objects)
    return named


def _is_named(upload: UploadedFile, named: set[tuple[str, str | None]]) -> bool:
    return (upload.key, upload.version_id) in named or (upload.key, None) in named


def locate_undelivered(
    uploads: Sequence[UploadedFile],
    missing: Sequence[str],
    *,
    dead_letters: Iterable[str],
    queued: Iterable[str],
    unread_in_queue: int,
    claimed_keys: set[str],
) -> Whereabouts:
    """Sort the undelivered files (``Reconciliation.missing``) by where their trail ends."""
    by_key: dict[str, list[UploadedFile]] = defaultdict(list)
    for each in uploads:
        by_key[each.key].append(each)
    labelled = {upload_label(each, len(by_key[each.key])): each for each in uploads}
    in_dlq, in_queue = _named(dead_letters), _named(queued)
    found = Whereabouts()
    for label in missing:
        upload = labelled.get(label)
        if upload is not None and _is_named(upload, in_dlq):
            found.dead_lettered.append(label)
        elif upload is not None and _is_named(upload, in_queue):
            found.queued.append(label)
        elif upload is not None and upload.key in claimed_keys:
            found.in_progress.append(label)
        elif unread_in_queue:
            found.unread.append(label)
        else:
            found.lost.append(label)
    return found


def claims_in_progress(dynamodb: DynamoDBClient, table: str) -> set[str]:
    """Keys with an IN_PROGRESS claim in the idempotency table (a scan: sandbox-sized tables only)."""
    keys: set[str] = set()
    paginator = dynamodb.get_paginator("scan")
    pages = paginator.paginate(
        TableName=table,
        FilterExpression="#s = :in_progress",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":in_progress": {"S": "IN_PROGRESS"}},
        ProjectionExpression="object_key",
    )
    for page in pages:
        keys.update(item["object_key"]["S"] for item in page.get("Items", []) if "object_key" in item)
    return keys


#: With files still undelivered, an empty queue must stay empty this long before a run calls it settled:
#: a notification may still be on its way from the bucket to the queue (LocalStack delivers them later).
SETTLE_SECONDS = 10.0


class Stall:
    """Tells a pipeline that is slow from one that stopped: waits while anything moves.

    ``observe`` takes a snapshot of whatever shows progress (files delivered, queue depths); the wait
    is over when the snapshot has not changed for ``stall_seconds``, or when ``limit_seconds`` (if
    any) have passed in all.
    """

    def __init__(
        self, stall_seconds: float, *, limit_seconds: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stall_seconds = stall_seconds
        self.limit_seconds = limit_seconds
        self._clock = clock
        self._started = clock()
        self._last_change = self._started
        self._last: object = None

    def observe(self, snapshot: object) -> None:
        """Record the current state; any change counts as progress."""
        if snapshot != self._last:
            self._last = snapshot
            self._last_change = self._clock()

    @property
    def stalled(self) -> bool:
        """Nothing has moved for ``stall_seconds``."""
        return self._clock() - self._last_change >= self.stall_seconds

    @property
    def over_limit(self) -> bool:
        return self.limit_seconds is not None and self._clock() - self._started >= self.limit_seconds

    @property
    def should_stop(self) -> bool:
        return self.stalled or self.over_limit

    def reason(self) -> str:
        """Why the wait ended, in words for the report."""
        if self.over_limit and not self.stalled:
            return f"the run stopped waiting after its limit of {self.limit_seconds:g} s, while still moving"
        return f"the run stopped waiting: nothing moved for {self.stall_seconds:g} s"


@dataclass(frozen=True, slots=True)
class Progress:
    """A reading of the pipeline: what is still to be delivered, and where its messages are."""

    undelivered: int
    visible: int
    waiting: int
    """In flight or delayed (deferred): neither can be received now, both are still to be processed."""
    dead_letters: int

    def settled(self, dead_letters_expected: int) -> bool:
        """Nothing left that could move: the event queue is empty and the poison is in the DLQ."""
        return not (self.visible or self.waiting) and self.dead_letters >= dead_letters_expected

    @property
    def moved(self) -> tuple[int, int, int]:
        """What changes only when work gets done: files delivered, messages leaving the event queue,
        messages dead-lettered. Messages going round (received, handed back or deferred, received
        again) change the visible and waiting counts but not their sum: that is no progress."""
        return self.undelivered, self.visible + self.waiting, self.dead_letters


def wait_for_pipeline(
    read: Callable[[], Progress],
    *,
    dead_letters_expected: int,
    stall_seconds: float,
    limit_seconds: float | None = None,
    tick: Callable[[], None] = lambda: None,
    poll_seconds: float = 0.2,
) -> tuple[bool, str]:
    """Wait while anything moves; returns (settled, why the wait ended otherwise).

    Settled means everything was delivered and the queue is empty, or the queue has been empty and
    nothing has moved for ``SETTLE_SECONDS`` (what is still undelivered then is dead-lettered or lost).
    """
    stall = Stall(stall_seconds, limit_seconds=limit_seconds)
    quiet = Stall(SETTLE_SECONDS)
    while not stall.should_stop:
        tick()
        progress = read()
        stall.observe(progress.moved)
        quiet.observe(progress.moved)
        if progress.settled(dead_letters_expected) and (not progress.undelivered or quiet.stalled):
            return True, ""
        time.sleep(poll_seconds)
    return False, stall.reason()


def whereabouts_in(
    clients: Clients,
    *,
    queue_url: str,
    table: str | None,
    uploads: Sequence[UploadedFile],
    missing: Sequence[str],
    dead_letters: Sequence[str],
    handed_back: Sequence[str] | None,
) -> Whereabouts:
    """Read what the event queue and the claims table still hold, and place every undelivered file.

    Visible messages are read (and left in place); in-flight ones are those the function handed back,
    whose bodies only an emulated event source mapping keeps (``handed_back``; None where unknown);
    delayed (deferred) ones cannot be read at all and count as unread.
    """
    if not missing:
        return Whereabouts()
    visible, waiting = queue_depth(clients, queue_url)
    readable = queue_bodies(clients.sqs, queue_url, hold_seconds=1) if visible else []
    in_flight = list(handed_back) if handed_back is not None else []
    unread = max(0, visible - len(readable)) + max(0, waiting - len(in_flight))
    return locate_undelivered(
        uploads,
        missing,
        dead_letters=dead_letters,
        queued=readable + in_flight,
        unread_in_queue=unread,
        claimed_keys=claims_in_progress(clients.dynamodb, table) if table else set(),
    )
