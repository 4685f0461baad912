"""``data-aggregator replay``: copy bundles from Archive back to Distribution.

Archive is the authoritative copy and moves to Glacier Deep Archive, so a replay may first need a
restore request, which takes hours. The replayer therefore works in passes: each pass looks at every
selected bundle, requests restores that are missing, copies what is readable, and reports the rest as
pending; ``--wait`` repeats passes until nothing is pending.

Every step is idempotent: a bundle whose Distribution copy already has the same ``content-sha256`` is
skipped, a restore in progress is not requested twice, and a copy is verified by hashing the bytes
that landed in Distribution (a bad copy is deleted again so the consumer never sees it).
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from data_aggregator.ops.awserrors import error_code, is_configuration_error
from data_aggregator.ops.hashing import CONTENT_SHA256_METADATA, normalize_sha256, sha256_of_stream
from data_aggregator.ops.verify import BUNDLE_SUFFIX

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ARCHIVED_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})
TIERS = ("Bulk", "Standard", "Expedited")
MAX_SINGLE_COPY_BYTES = 5 * 1024**3
DEFAULT_PART_BYTES = 512 * 1024**2
_HOUR_PATH = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})/[^/]+$")


class Action(StrEnum):
    """What a pass did (or, in a dry run, would do) with one bundle."""

    COPIED = "copied"
    ALREADY_PRESENT = "already-present"
    WOULD_COPY = "would-copy"
    RESTORE_REQUESTED = "restore-requested"
    WOULD_RESTORE = "would-restore"
    RESTORE_IN_PROGRESS = "restore-in-progress"
    FAILED = "failed"

    @property
    def pending(self) -> bool:
        """True while the bundle waits for a Glacier restore."""
        return self in (Action.RESTORE_REQUESTED, Action.RESTORE_IN_PROGRESS)


@dataclass(frozen=True, slots=True)
class Outcome:
    """One bundle's result in one pass."""

    key: str
    action: Action
    storage_class: str = "STANDARD"
    size: int = 0
    detail: str = ""

    def render(self) -> str:
        """One report line."""
        extra = f"  {self.detail}" if self.detail else ""
        return f"{self.action.value:<20} {self.storage_class:<13} {self.size:>14,}  {self.key}{extra}"


@dataclass(slots=True)
class ReplayReport:
    """The final state of every selected bundle after the last pass."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)
    passes: int = 0
    dry_run: bool = False

    @property
    def failed(self) -> list[Outcome]:
        """Bundles that could not be replayed."""
        return [o for o in self.outcomes.values() if o.action is Action.FAILED]

    @property
    def pending(self) -> list[Outcome]:
        """Bundles still waiting for a restore."""
        return [o for o in self.outcomes.values() if o.action.pending]

    def exit_code(self) -> int:
        """0 all delivered (or planned, in a dry run), 1 any failure, 3 restores still pending."""
        if self.failed:
            return 1
        if self.pending and not self.dry_run:
            return 3
        return 0

    def render(self) -> str:
        """Per-bundle lines, then counts by action."""
        lines = [f"{'action':<20} {'storage class':<13} {'bytes':>14}  key"]
        lines.extend(outcome.render() for outcome in self.outcomes.values())
        counts = Counter(outcome.action.value for outcome in self.outcomes.values())
        summary = ", ".join(f"{count} {action}" for action, count in sorted(counts.items())) or "nothing selected"
        mode = " (dry run: nothing was changed)" if self.dry_run else ""
        lines.append(f"{len(self.outcomes)} bundle(s) after {self.passes} pass(es): {summary}{mode}")
        return "\n".join(lines)


def restore_state(header: str | None) -> str:
    """``none``, ``ongoing`` or ``done`` from the ``x-amz-restore`` header S3 returns."""
    if not header:
        return "none"
    if 'ongoing-request="true"' in header:
        return "ongoing"
    return "done"


def hour_of_key(key: str) -> datetime | None:
    """The UTC hour a bundle key is filed under (``.../YYYY/MM/DD/HH/<id>.tar.gz``), if it has one."""
    match = _HOUR_PATH.search(key)
    if match is None:
        return None
    year, month, day, hour = (int(part) for part in match.groups())
    try:
        return datetime(year, month, day, hour, tzinfo=UTC)
    except ValueError:
        return None


def parse_time(value: str) -> datetime:
    """ISO-8601 date or datetime; naive values are UTC (bundle keys are filed in UTC)."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO-8601 time: {value!r} (for example 2026-11-22T14:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Replayer:
    """Copies selected bundles from the Archive bucket to the Distribution bucket."""

    def __init__(
        self,
        s3: S3Client,
        archive_bucket: str,
        distribution_bucket: str,
        *,
        tier: str = "Bulk",
        restore_days: int = 7,
        dry_run: bool = False,
        part_bytes: int = DEFAULT_PART_BYTES,
        single_copy_limit: int = MAX_SINGLE_COPY_BYTES,
    ) -> None:
        if tier not in TIERS:
            raise ValueError(f"restore tier must be one of {', '.join(TIERS)}, got {tier!r}")
        if restore_days < 1:
            raise ValueError(f"restore days must be at least 1, got {restore_days}")
        if archive_bucket == distribution_bucket:
            raise ValueError("archive and distribution buckets must differ")
        self._s3 = s3
        self.archive = archive_bucket
        self.distribution = distribution_bucket
        self.tier = tier
        self.restore_days = restore_days
        self.dry_run = dry_run
        self.part_bytes = part_bytes
        self.single_copy_limit = single_copy_limit

    # -- selection ---------------------------------------------------------------------------------

    def select(
        self,
        *,
        keys: Iterable[str] = (),
        prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        bundle_prefix: str = "bundles/",
    ) -> list[str]:
        """Bundle keys to replay; how the selectors combine (the README and ``--help`` say the same):

        - ``keys`` name exact bundles and stand alone: combined with any other selector is an error,
          because "these bundles and also those" is never what an operator who names keys means;
        - ``prefix``, ``since`` and ``until`` are filters and intersect: a bundle is selected when its
          key is under ``prefix`` (default: ``bundle_prefix``) **and** it is filed in an hour that
          overlaps ``[since, until)``. Keys that are not ``.tar.gz`` or carry no hour are skipped
          by a time filter.

        Under the bundle prefix keys sort by time, so listing starts at the first hour of interest
        and stops after the last: a narrow range over a large archive stays cheap.
        """
        if keys and (prefix is not None or since is not None or until is not None):
            raise ValueError("--key names exact bundles; it cannot be combined with --prefix, --since or --until")
        if keys:
            return list(dict.fromkeys(keys))
        if since is not None and until is not None and since >= until:
            raise ValueError("--since must be earlier than --until")
        root = prefix if prefix is not None else bundle_prefix
        time_ordered = root.startswith(bundle_prefix) or bundle_prefix.startswith(root)
        start_after = None
        if since is not None and time_ordered:
            first = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
            start_after = f"{bundle_prefix}{first:%Y/%m/%d/%H}/~"
        timed = since is not None or until is not None
        selected: list[str] = []
        for key in self._list(root, start_after=start_after):
            if not key.endswith(BUNDLE_SUFFIX):
                continue
            if not timed:
                selected.append(key)
                continue
            hour = hour_of_key(key)
            if hour is None:
                continue
            if until is not None and hour >= until:
                if time_ordered and key.startswith(bundle_prefix):
                    break
                continue
            if since is None or hour + timedelta(hours=1) > since:
                selected.append(key)
        return list(dict.fromkeys(selected))

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys that are not in the archive bucket (an operator's typo, found before any work)."""
        absent = []
        for key in keys:
            try:
                self._s3.head_object(Bucket=self.archive, Key=key)
            except ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    absent.append(key)
                    continue
                raise
        return absent

    def _list(self, prefix: str, start_after: str | None = None) -> Iterator[str]:
        paginator = self._s3.get_paginator("list_objects_v2")
        request: dict[str, Any] = {"Bucket": self.archive, "Prefix": prefix}
        if start_after:
            request["StartAfter"] = start_after
        for page in paginator.paginate(**request):
            for item in page.get("Contents", []):
                yield item["Key"]

    # -- passes ------------------------------------------------------------------------------------

    def run(
        self,
        keys: list[str],
        *,
        wait: bool = False,
        poll_interval: float = 300.0,
        wait_timeout: float | None = None,
        on_outcome: Callable[[int, int, Outcome], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> ReplayReport:
        """Run passes over ``keys``; with ``wait``, until no restore is pending (or the timeout)."""
        report = ReplayReport(dry_run=self.dry_run)
        todo = list(keys)
        started = clock()
        while True:
            report.passes += 1
            for index, key in enumerate(todo, start=1):
                outcome = self.replay_one(key)
                report.outcomes[key] = outcome
                if on_outcome is not None:
                    on_outcome(index, len(todo), outcome)
            todo = [o.key for o in report.outcomes.values() if o.action.pending]
            if not todo or not wait or self.dry_run:
                return report
            if wait_timeout is not None and clock() - started + poll_interval > wait_timeout:
                return report
            sleep(poll_interval)

    def replay_one(self, key: str) -> Outcome:
        """One step for one bundle; S3 errors become a FAILED outcome naming the error."""
        try:
            return self._replay_one(key)
        except (ClientError, BotoCoreError) as exc:
            if is_configuration_error(exc):
                raise  # every bundle would fail alike: the command line reports it once (exit 2)
            if isinstance(exc, BotoCoreError):
                return Outcome(key, Action.FAILED, detail=str(exc))
            code = exc.response.get("Error", {}).get("Code", "error")
            return Outcome(key, Action.FAILED, detail=f"{code}: {exc}")

    def _replay_one(self, key: str) -> Outcome:
        bundle = self._head_archive(key)
        if isinstance(bundle, Outcome):
            return bundle
        present = self._distribution_digest(key)
        if present == bundle.sha256:
            return bundle.outcome(Action.ALREADY_PRESENT)
        if bundle.needs_restore:
            state = restore_state(bundle.restore)
            if state == "ongoing":
                return bundle.outcome(Action.RESTORE_IN_PROGRESS)
            if state == "none":
                return self._request_restore(bundle)
        replacing = present is not None
        if self.dry_run:
            return bundle.outcome(Action.WOULD_COPY, "replacing a different object" if replacing else "")
        new_version = self._copy(bundle)
        return self._verify_copy(bundle, new_version, replacing=replacing)

    def _head_archive(self, key: str) -> _ArchivedBundle | Outcome:
        try:
            head = self._s3.head_object(Bucket=self.archive, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return Outcome(key, Action.FAILED, detail=f"not in the archive bucket {self.archive}")
            raise
        metadata = dict(head.get("Metadata", {}))
        bundle = _ArchivedBundle(
            key=key,
            storage_class=head.get("StorageClass", "STANDARD"),
            size=head.get("ContentLength", 0),
            version_id=head.get("VersionId"),
            sha256=normalize_sha256(metadata.get(CONTENT_SHA256_METADATA)) or "",
            content_type=head.get("ContentType", "application/gzip"),
            metadata=metadata,
            restore=head.get("Restore"),
            archive_status=head.get("ArchiveStatus"),
        )
        if not bundle.sha256:
            return bundle.outcome(Action.FAILED, f"archive copy has no valid {CONTENT_SHA256_METADATA}")
        return bundle

    def _distribution_digest(self, key: str) -> str | None:
        try:
            head = self._s3.head_object(Bucket=self.distribution, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        value = head.get("Metadata", {}).get(CONTENT_SHA256_METADATA, "")
        return normalize_sha256(value) or value

    def _request_restore(self, bundle: _ArchivedBundle) -> Outcome:
        if bundle.storage_class == "DEEP_ARCHIVE" and self.tier == "Expedited":
            return bundle.outcome(Action.FAILED, "Expedited is not offered for DEEP_ARCHIVE: use Standard or Bulk")
        if self.dry_run:
            return bundle.outcome(Action.WOULD_RESTORE, f"tier {self.tier}")
        request: dict[str, Any] = {"Bucket": self.archive, "Key": bundle.key}
        if bundle.version_id:
            request["VersionId"] = bundle.version_id
        if bundle.archive_status:  # Intelligent-Tiering archive tiers take no Days or tier
            request["RestoreRequest"] = {}
        else:
            request["RestoreRequest"] = {
                "Days": self.restore_days,
                "GlacierJobParameters": {"Tier": self.tier},
            }
        try:
            self._s3.restore_object(**request)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "RestoreAlreadyInProgress":
                return bundle.outcome(Action.RESTORE_IN_PROGRESS)
            raise
        return bundle.outcome(Action.RESTORE_REQUESTED, f"tier {self.tier}, {self.restore_days} day(s)")

    def _copy(self, bundle: _ArchivedBundle) -> str | None:
        source: dict[str, str] = {"Bucket": self.archive, "Key": bundle.key}
        if bundle.version_id:
            source["VersionId"] = bundle.version_id
        if bundle.size <= self.single_copy_limit:
            response = self._s3.copy_object(
                Bucket=self.distribution,
                Key=bundle.key,
                CopySource=source,  # type: ignore[arg-type]
                MetadataDirective="COPY",
                ChecksumAlgorithm="SHA256",
            )
            return response.get("VersionId")
        return self._multipart_copy(bundle, source)

    def _multipart_copy(self, bundle: _ArchivedBundle, source: dict[str, str]) -> str | None:
        """Above 5 GiB CopyObject is refused; copy in parts, carrying the metadata over explicitly."""
        key = bundle.key
        upload = self._s3.create_multipart_upload(
            Bucket=self.distribution, Key=key, ContentType=bundle.content_type, Metadata=bundle.metadata
        )
        upload_id = upload["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, bundle.size, self.part_bytes), start=1):
                end = min(start + self.part_bytes, bundle.size) - 1
                part = self._s3.upload_part_copy(
                    Bucket=self.distribution,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,  # type: ignore[arg-type]
                    CopySourceRange=f"bytes={start}-{end}",
                )
                parts.append({"PartNumber": number, "ETag": part["CopyPartResult"]["ETag"]})
            done = self._s3.complete_multipart_upload(
                Bucket=self.distribution,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException:
            self._s3.abort_multipart_upload(Bucket=self.distribution, Key=key, UploadId=upload_id)
            raise
        return done.get("VersionId")

    def _verify_copy(self, bundle: _ArchivedBundle, version_id: str | None, *, replacing: bool) -> Outcome:
        request: dict[str, Any] = {"Bucket": self.distribution, "Key": bundle.key}
        if version_id:
            request["VersionId"] = version_id
        response = self._s3.get_object(**request)
        try:
            actual, _ = sha256_of_stream(response["Body"])
        finally:
            response["Body"].close()
        copied_digest = normalize_sha256(response.get("Metadata", {}).get(CONTENT_SHA256_METADATA))
        if actual == bundle.sha256 and copied_digest == bundle.sha256:
            return bundle.outcome(
                Action.COPIED, "sha256 verified" + (", replaced a different object" if replacing else "")
            )
        # Never leave a bad copy for the consumer: delete that version, or, in a bucket without
        # versioning (no version id), the key itself, which holds nothing but the bad copy now.
        if version_id:
            self._s3.delete_object(Bucket=self.distribution, Key=bundle.key, VersionId=version_id)
        else:
            self._s3.delete_object(Bucket=self.distribution, Key=bundle.key)
        return bundle.outcome(
            Action.FAILED,
            f"copy verification failed: bytes {actual}, metadata {copied_digest}, archive {bundle.sha256}",
        )


@dataclass(frozen=True, slots=True)
class _ArchivedBundle:
    """What HeadObject said about a bundle's current version in Archive."""

    key: str
    storage_class: str
    size: int
    version_id: str | None
    sha256: str
    content_type: str
    metadata: dict[str, str]
    restore: str | None
    archive_status: str | None

    @property
    def needs_restore(self) -> bool:
        """Glacier Flexible Retrieval, Deep Archive and Intelligent-Tiering archive tiers are unreadable."""
        return self.storage_class in ARCHIVED_CLASSES or bool(self.archive_status)

    def outcome(self, action: Action, detail: str = "") -> Outcome:
        """An outcome for this bundle."""
        return Outcome(self.key, action, self.storage_class, self.size, detail)
